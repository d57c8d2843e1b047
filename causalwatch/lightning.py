"""PyTorch Lightning: `CausalwatchLogger` (a Lightning logger over a causalwatch run) and
`CausalwatchWatch` (a callback that applies `cw.torch.watch` at fit start).

    trainer = L.Trainer(logger=CausalwatchLogger(name="my model", reference=edges,
                                                 variables=names),
                        callbacks=[CausalwatchWatch(adjacency="adj_logits")],
                        gradient_clip_val=1.0)

One record per training epoch: Lightning's `epoch` (0-based) is the row's step, every
metric logged during the epoch goes into that row (the last value of a key wins, so an
`on_epoch=True` metric's epoch aggregate is what is kept), and the callback closes the row
when the next epoch starts, so the watch's fields cover exactly that epoch's steps.
Lightning's own metric names (`train_loss`, `val/f1`, ...) are the user's keys; names of
the record's fields (`loss_recon`, `f1`, ...; docs/metrics.md) fill those fields.

Needs the `lightning` extra (`pip install causalwatch[lightning]`); `import causalwatch`
does not import this module.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Unpack

import lightning.pytorch as pl
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch import Tensor

import causalwatch
from causalwatch import InitOptions, check_options
from causalwatch.fields import custom_key
from causalwatch.run import FieldSource, Run
from causalwatch.torch import EVAL_EVERY, EvalEvery, Watch

logger = logging.getLogger("causalwatch.lightning")



def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested hyperparameters as one level of `a.b` keys, each value JSON or its text."""
    flat: dict[str, Any] = {}
    for key, given in params.items():
        name = f"{prefix}{key}"
        value = vars(given) if isinstance(given, argparse.Namespace) else given
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        elif value is None or isinstance(value, bool | int | str):
            flat[name] = value
        elif isinstance(value, float):
            flat[name] = value if math.isfinite(value) else str(value)
        else:
            flat[name] = str(value)  # a class, a tensor, a path: readable, not refused
    return flat


class CausalwatchLogger(Logger):
    """A Lightning logger that streams to a causalwatch run (`cw.init`'s arguments).

    The run starts at the first use (`experiment`, or the first metrics), so the
    hyperparameters Lightning logs at fit start go into its config. Rank zero only.
    """

    def __init__(
        self,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        run: Run | None = None,
        **options: Unpack[InitOptions],
    ) -> None:
        super().__init__()
        self._name = name
        # Checked now: a misspelt option fails where it is written, not at the first epoch.
        self._options = check_options(options, "CausalwatchLogger")
        self._config: dict[str, Any] = dict(config or {})
        self._run = run
        self._sources: list[FieldSource] = []
        self._row_epoch: int | None = None  # the epoch of the open row, if any
        self._closed_epoch: int | None = None
        self._warned: set[str] = set()

    @property
    def name(self) -> str:
        return self._name or "causalwatch"

    @property
    def version(self) -> str:
        # The run id, once the run exists: Lightning names checkpoint folders after it.
        return self._run.id if self._run is not None else ""  # until the run starts

    @property
    @rank_zero_experiment
    def experiment(self) -> Run:
        """The causalwatch run. It starts on the first use of one of its attributes (or the
        first metrics): Lightning reads `experiment` at setup, before it logs the
        hyperparameters that belong in the run's config, which is sent when a run starts."""
        if self._run is None:
            return _DeferredRun(self)  # type: ignore[return-value]
        return self._run

    def _start(self) -> Run:
        if self._run is None:
            self._run = causalwatch.init(name=self._name, config=self._config, **self._options)
            for source in self._sources:
                self._attach(source)
        return self._run

    def _attach(self, source: FieldSource) -> None:
        assert self._run is not None
        if isinstance(source, Watch):
            source.bind(self._run)
        else:
            self._run.add_field_source(source)

    def add_field_source(self, source: FieldSource) -> None:
        """`Run.add_field_source`, also before the run exists (then at its start)."""
        self._sources.append(source)
        if self._run is not None:
            self._attach(source)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(params, argparse.Namespace):
            params = vars(params)
        flat = _flatten(dict(params or {}))
        if self._run is None:
            self._config.update(flat)
        elif flat.items() - self._config.items():
            self._warn_once("late-hparams", "hyperparameters logged after the run started are "
                            "not sent (the config goes with the run's start)")

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        values = dict(metrics)
        epoch = values.pop("epoch", None)
        row = int(epoch) if epoch is not None else (self._row_epoch or 0)
        if self._closed_epoch is not None and row <= self._closed_epoch:
            # The row was sent already (e.g. a metric logged after the callback closed it).
            self._warn_once(f"late-{row}", f"metrics of epoch {row} after its row was sent are "
                            "dropped")
            return
        # Lightning's names are free text: made keys rather than refused rows.
        data = {custom_key(str(k)): (v.item() if isinstance(v, Tensor) else v)
                for k, v in values.items()}
        run = self._start()
        try:
            run.log(data, step=row)
        except ValueError:
            # One bad value must not cost the others (nor the training run): key by key.
            for key, value in data.items():
                try:
                    run.log({key: value}, step=row)
                except ValueError as err:
                    self._warn_once(f"key-{key}", f"metric dropped: {err}")
        self._row_epoch = row

    def end_epoch(self, epoch: int) -> None:
        """Send the row of `epoch` now (also when nothing was logged in it: the watch's
        fields are its row). Called by `CausalwatchWatch` when the next epoch starts."""
        if rank_zero_only.rank != 0:
            return
        if self._closed_epoch is not None and epoch <= self._closed_epoch:
            return
        self._start().log({}, step=epoch, commit=True)
        self._closed_epoch = epoch
        self._row_epoch = None

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Lightning's end of fit: "success" (and "finished") complete the run, "failed"
        fails it."""
        if self._run is None:
            return
        if status in ("success", "finished"):
            self._run.finish("completed")
        else:
            self._run.finish("failed", reason=f"Lightning finished with status {status!r}")

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("%s", text)


class _DeferredRun:
    """The logger's run before it starts: the first attribute read starts it."""

    def __init__(self, owner: CausalwatchLogger) -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._owner._start(), name)


def _resolve(module: pl.LightningModule, path: str) -> Any:
    value: Any = module
    for part in path.split("."):
        if not hasattr(value, part):
            raise AttributeError(f"adjacency: {type(module).__name__} has no {path!r}")
        value = getattr(value, part)
    return value


class CausalwatchWatch(pl.Callback):
    """Applies `cw.torch.watch` to the LightningModule at fit start.

    `adjacency`: the attribute (dotted path) holding the (d, d) logits, or a callable
    taking the module and returning (d, d) probabilities. `clip`: clip%'s threshold; default
    the Trainer's `gradient_clip_val` when it clips by norm (its clip calls are observed
    either way). Per-term gradient norms and loss shares: call `cw.torch.loss_terms({...})`
    in `training_step`, before returning the loss.
    """

    def __init__(
        self,
        adjacency: str | Callable[[pl.LightningModule], Tensor] = "adj_logits",
        *,
        clip: float | None = None,
        eval_every: EvalEvery = EVAL_EVERY,
        term_norm_every: int | None = None,
    ) -> None:
        self.adjacency = adjacency
        self.clip = clip
        self.eval_every = eval_every
        self.term_norm_every = term_norm_every
        self.watch: Watch | None = None
        self._epoch: int | None = None

    def _logger(self, trainer: pl.Trainer) -> CausalwatchLogger | None:
        return next((lg for lg in trainer.loggers if isinstance(lg, CausalwatchLogger)), None)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        if not trainer.optimizers:
            raise ValueError("CausalwatchWatch: the module configured no optimizer")
        if callable(self.adjacency):
            module, fn = pl_module, self.adjacency
            adjacency: Any = lambda: fn(module)  # noqa: E731 — the watch calls it per row
        else:
            adjacency = _resolve(pl_module, self.adjacency)
        clip = self.clip
        if clip is None and trainer.gradient_clip_val and trainer.gradient_clip_algorithm in (
            None, "norm"
        ):
            clip = float(trainer.gradient_clip_val)
        extra = {} if self.term_norm_every is None else {"term_norm_every": self.term_norm_every}
        # Unbound: the logger's run does not exist yet; it binds the watch when it starts.
        self.watch = Watch(pl_module, trainer.optimizers[0], adjacency=adjacency, clip=clip,
                           eval_every=self.eval_every, run=None, **extra)
        cw_logger = self._logger(trainer)
        if cw_logger is not None:
            cw_logger.add_field_source(self.watch)
        elif (run := causalwatch.current_run()) is not None:
            self.watch.bind(run)
        else:
            logger.warning("CausalwatchWatch: no CausalwatchLogger and no open causalwatch run; "
                           "the watch measures but nothing sends its fields")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end_epoch(trainer)
        self._epoch = trainer.current_epoch

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end_epoch(trainer)

    def _end_epoch(self, trainer: pl.Trainer) -> None:
        cw_logger = self._logger(trainer)
        if self._epoch is not None and cw_logger is not None:
            cw_logger.end_epoch(self._epoch)
        self._epoch = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.watch is not None:
            self.watch.close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if self.watch is not None:
            self.watch.close()
