"""`cw.torch.watch`: the health fields of each logged row, measured on the user's own objects.

A `Watch` observes a model, its optimizer and its adjacency logits, and fills the epoch
record's health fields (docs/metrics.md) exactly as our trainer computes them
(trainer/loop.py, trainer/health.py, trainer/graph_metrics.py), so a red flag means the same
on an SDK run as on one of ours:

- per optimizer step (an optimizer step post-hook): the pre-clip global gradient norm, taken
  from the `clip_grad_norm_` call of that step when there was one (`watch.clip_grad_norm_()`,
  or the user's own `torch.nn.utils.clip_grad_norm_` on this model's parameters, observed
  while the watch is open), otherwise measured on the gradients the step used;
- per `watch.loss_terms({...})` call: each weighted term's value, and on every
  `term_norm_every`-th call since the last row (its first included) each term's own
  gradient norm, which costs one extra backward pass per term on those steps;
- per row (the run calls the watch, a field source, just before it sends a row): clip% and
  the norms' mean/max/p90, loss means and shares, lr, update ratio, logit and edge counts,
  and on evaluation epochs SHD/F1 against the run's reference and the graph itself. A
  row's steps end at the user's last `run.log` into it: with step semantics the run sends a
  row only when the next one starts, after some of the next row's steps have run.

Nothing here converts a tensor to a Python number per step: values are kept as tensors and
read once per row, so a CUDA loop gets no extra synchronisation per step.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from causalwatch import clip_observer
from trainer import graph_metrics, health
from trainer.config import TrainConfig
from trainer.protocol import LOSS_TERMS

logger = logging.getLogger("causalwatch.torch")

# As trainer/loop.py's TERM_NORM_EVERY, but a user's loop pays a whole extra backward per
# term on a measured step (ours reuses the per-term gradients as the step's own), so the
# SDK samples more sparsely by default: bench/sdk_overhead.py measures the cost.
TERM_NORM_EVERY = 32
# Evaluation epochs (SHD/F1, the graph): every n-th, as our trainer's default.
EVAL_EVERY: int = TrainConfig.model_fields["eval_every"].default
# Logits read back from probabilities (an `adjacency` callable) are clamped this far from 0
# and 1, so a saturated probability gives a large finite logit, not ±inf.
PROB_EPS = 1e-6

Adjacency = Tensor | Callable[[], Tensor]
EvalEvery = int | Callable[[int], bool]


class RunLike(Protocol):
    """What a watch needs of a `causalwatch` run (causalwatch's `Run`)."""

    reference: Sequence[tuple[str, str]] | None
    variables: Sequence[str] | None

    @property
    def open_row(self) -> tuple[int, float] | None: ...

    def add_field_source(self, source: Callable[[int], Mapping[str, Any]]) -> None: ...

    def log_graph(self, probabilities: Any, step: int | None = None) -> None: ...


def _total_norm(tensors: Sequence[Tensor]) -> Tensor:
    """L2 norm over all `tensors` together, as clip_grad_norm_ computes its total norm.

    torch._foreach_norm is what clip_grad_norm_ itself runs; get_total_norm's grouping by
    device and dtype around it doubles the cost on a small model (bench/sdk_overhead.py).
    """
    norms = torch._foreach_norm(list(tensors), 2.0)
    device = norms[0].device
    return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]), 2.0)


@dataclass
class _Span:
    """What the steps of one row measured, kept as tensors until the row is read."""

    norms: list[Tensor] = field(default_factory=list)
    thresholds: list[float | None] = field(default_factory=list)
    terms: dict[str, list[Tensor]] = field(default_factory=dict)
    term_norms: dict[str, list[Tensor]] = field(default_factory=dict)

    def extend(self, later: _Span) -> None:
        self.norms += later.norms
        self.thresholds += later.thresholds
        for mine, theirs in ((self.terms, later.terms), (self.term_norms, later.term_norms)):
            for name, values in theirs.items():
                mine.setdefault(name, []).extend(values)


@dataclass
class _Sealed:
    """The steps that belong to the run's open row, and the model's state after them."""

    row: tuple[Any, ...]
    span: _Span
    theta: np.ndarray
    lr: float
    probs: np.ndarray
    logits: np.ndarray


def _open_row(run: RunLike | None) -> tuple[int, float] | None:
    """(step, time of the last log) of the run's open row (`Run.open_row`), or None."""
    return None if run is None else run.open_row


class Watch:
    """Health fields from a model, its optimizer and its adjacency logits (see module doc).

    A field source of a run: `watch(epoch)` returns the fields measured since the previous
    row and starts the next span. Use `close()` (or `with`) to remove its hooks.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        adjacency: Adjacency,
        clip: float | None = None,
        run: RunLike | None = None,
        eval_every: EvalEvery = EVAL_EVERY,
        term_norm_every: int = TERM_NORM_EVERY,
        observe_clip: bool = True,
    ) -> None:
        if clip is not None and not (isinstance(clip, int | float) and clip > 0):
            raise ValueError(f"clip: a positive number or None, got {clip!r}")
        if isinstance(eval_every, int) and eval_every < 1:
            raise ValueError(f"eval_every: a positive integer or a callable, got {eval_every}")
        if term_norm_every < 0:
            raise ValueError(f"term_norm_every: 0 (never) or a positive integer, got "
                             f"{term_norm_every}")
        if not (isinstance(adjacency, Tensor) or callable(adjacency)):
            raise TypeError("adjacency: the (d, d) logits tensor, or a callable returning "
                            f"(d, d) probabilities, got {type(adjacency).__name__}")
        self.model = model
        self.optimizer = optimizer
        self.adjacency = adjacency
        self.clip = None if clip is None else float(clip)
        self.run = run
        self.eval_every = eval_every
        self.term_norm_every = term_norm_every
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._param_ids = {id(p) for p in self._params}
        self.steps = 0  # optimizer steps since the watch began
        self._span = _Span()
        self._sealed: _Sealed | None = None
        self._last_row: tuple[Any, Any] | None = None
        self._pending: tuple[Tensor, float] | None = None
        self._term_calls = 0  # loss_terms calls in this span: every n-th measures norms
        self._term_norm_failed = False
        self._theta_start = self._flat_params()
        self._hook = optimizer.register_step_post_hook(self._after_step)
        self.observe_clip = observe_clip
        clip_observer.register(self)
        self._reference: np.ndarray | None = None
        self._reference_read = False
        self.closed = False
        if run is not None:
            self.bind(run)

    def bind(self, run: RunLike) -> None:
        """Fill `run`'s rows from now on (its reference and graph too): the Lightning
        callback's watch exists before its logger's run does."""
        self.run = run
        self._reference_read = False
        run.add_field_source(self)

    # -- per step ---------------------------------------------------------------------------

    def _seal_if_logged(self) -> None:
        """Steps so far belong to the open row when the user logged into it since the last
        step (a loop logs an epoch's row after its steps): move them there."""
        row = _open_row(self.run)
        if row is None or row == self._last_row:
            return
        self._last_row = row
        probs, logits = self._probabilities()
        if self._sealed is not None and self._sealed.row[0] == row[0]:
            self._sealed.span.extend(self._span)  # logged into the same row again
            sealed = self._sealed
            sealed.theta, sealed.lr = self._flat_params(), self._lr()
            sealed.probs, sealed.logits = probs, logits
        else:
            self._sealed = _Sealed(row, self._span, self._flat_params(), self._lr(),
                                   probs, logits)
        self._span = _Span()
        self._term_calls = 0

    def clip_grad_norm_(self, max_norm: float | None = None, norm_type: float = 2.0) -> Tensor:
        """Clip this model's gradients at `max_norm` (default: the watch's `clip`); returns
        and records the pre-clip total norm (torch's `clip_grad_norm_`)."""
        limit = self.clip if max_norm is None else float(max_norm)
        if limit is None:
            raise ValueError("clip_grad_norm_: pass max_norm, or watch(..., clip=...)")
        norm = clip_observer.torch_clip()(self._params, limit, norm_type)
        self._pending = (norm.detach(), limit)
        return norm

    def clipped(self, params: Iterable[Tensor], norm: Tensor, max_norm: float) -> None:
        """The user's own clip_grad_norm_ ran (clip_observer): its norm is this step's when
        it clipped this model's parameters (a GAN clips two models)."""
        if any(id(p) in self._param_ids for p in params):
            self._pending = (norm.detach(), max_norm)

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.steps += 1
        self._seal_if_logged()
        if self._pending is not None:
            norm, limit = self._pending
            self._pending = None
        else:
            # No clip this step: the gradients the step just used are the pre-clip ones (the
            # optimizers do not modify .grad in place).
            grads = [p.grad for p in self._params if p.grad is not None]
            if not grads:
                return
            norm, limit = _total_norm(grads).detach(), self.clip
        self._span.norms.append(norm)
        self._span.thresholds.append(limit)

    def loss_terms(self, terms: Mapping[str, Tensor | float]) -> None:
        """Record this step's weighted loss terms (`{"recon": λ·term, ...}`; a `loss_`
        prefix is allowed). Call it before `backward()`: on sampled steps each term's own
        gradient norm is taken from the graph, which backward frees."""
        self._seal_if_logged()
        named = {name.removeprefix("loss_"): value for name, value in terms.items()}
        terms_seen = self._span.terms
        for name, value in named.items():
            # Only detach per step (each torch call costs µs here); shapes at the row.
            tensor = value.detach() if isinstance(value, Tensor) else torch.tensor(float(value))
            if name in terms_seen:
                terms_seen[name].append(tensor)
            else:
                terms_seen[name] = [tensor]
        measure = (
            self.term_norm_every > 0
            and self._term_calls % self.term_norm_every == 0
            and not self._term_norm_failed
            and torch.is_grad_enabled()
        )
        self._term_calls += 1
        if measure:
            self._measure_term_norms(named)

    def _measure_term_norms(self, named: Mapping[str, Tensor | float]) -> None:
        norms: dict[str, Tensor] = {}
        for name, value in named.items():
            if not isinstance(value, Tensor) or not value.requires_grad:
                norms[name] = torch.zeros(())  # switched off: the trainer's 0.0
                continue
            try:
                grads = torch.autograd.grad(
                    value, self._params, retain_graph=True, allow_unused=True
                )
            except RuntimeError as err:
                # Most likely called after backward() freed the graph: keep the values,
                # drop the norms for this span rather than fail the user's loop.
                logger.warning("per-term gradient norms not measured: %s", err)
                self._term_norm_failed = True
                return
            present = [g for g in grads if g is not None]
            norms[name] = _total_norm(present).detach() if present else torch.zeros(())
        for name, norm in norms.items():
            self._span.term_norms.setdefault(name, []).append(norm)

    # -- per row ----------------------------------------------------------------------------

    def __call__(self, epoch: int) -> dict[str, Any]:
        """The fields of the row for `epoch`, from the steps since the previous row up to
        the user's last log into this one. Called by the run just before it sends a row."""
        self._seal_if_logged()  # a log since the last step: the steps up to it are this row's
        if self._sealed is not None:
            sealed, self._sealed = self._sealed, None
        else:  # a caller without rows (a test, a user's own call): all steps so far
            probs, logits = self._probabilities()
            sealed = _Sealed((), self._span, self._flat_params(), self._lr(), probs, logits)
            self._span, self._term_calls = _Span(), 0
        self._last_row = None
        # No `step`: the run sets it from the user's own step.
        fields: dict[str, Any] = {"lr": sealed.lr}
        fields.update(self._norm_fields(sealed.span))
        fields.update(self._loss_fields(sealed.span))
        if sealed.theta.size:
            fields["update_ratio"] = health.update_ratio(self._theta_start, sealed.theta)
        self._theta_start = sealed.theta
        fields.update(self._graph_fields(sealed.probs, sealed.logits))
        if self._is_eval(epoch):
            fields.update(self._eval_fields(sealed.probs))
            if self.run is not None:
                # No step: called while the run completes this row, the graph is this row's
                # (a step would ask the run to move to another row from inside this one).
                self.run.log_graph(np.round(sealed.probs, 4).tolist())
        # A record must be finite (trainer.protocol): a diverged loop's NaN stays out of it.
        return {k: v for k, v in fields.items() if not (isinstance(v, float) and
                                                         not math.isfinite(v))}

    def _lr(self) -> float:
        # The first group's rate: the trainer's `lr` is its first (SEM weights') group too.
        return float(self.optimizer.param_groups[0]["lr"])

    def _norm_fields(self, span: _Span) -> dict[str, Any]:
        if not span.norms:
            return {}
        norms = torch.stack([n.float().cpu() for n in span.norms]).numpy().astype(np.float64)
        fields: dict[str, Any] = {
            "grad_norm_mean": float(norms.mean()),
            "grad_norm_max": float(norms.max()),
            "grad_norm_p90": float(np.percentile(norms, 90)),
        }
        judged = [(n, t) for n, t in zip(norms, span.thresholds, strict=True) if t is not None]
        if judged:
            # health.clip_pct over the steps that had a threshold (a clip call, or `clip`).
            fields["clip_pct"] = 100.0 * sum(n > t for n, t in judged) / len(judged)
        return fields

    def _loss_fields(self, span: _Span) -> dict[str, Any]:
        if not span.terms:
            return {}
        means = {
            name: float(torch.stack([v.reshape(()).double().cpu() for v in values]).mean())
            for name, values in span.terms.items()
        }
        # A contract term the objective does not have weighs 0 (as a logged row's does, see
        # causalwatch/fields.py): the loss-balance rules read all four.
        for name in LOSS_TERMS:
            means.setdefault(name, 0.0)
        fields: dict[str, Any] = {"loss_total": sum(means.values())}
        fields.update({f"loss_{name}": value for name, value in means.items()})
        fields.update(
            {f"share_{name}": value for name, value in health.loss_shares(means).items()}
        )
        for name, norms in span.term_norms.items():
            fields[f"grad_norm_{name}"] = float(torch.stack(norms).mean())
        return fields

    def _probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, logits) of the adjacency as float64 (d, d), diagonal zeroed."""
        with torch.no_grad():
            if isinstance(self.adjacency, Tensor):
                logits = self.adjacency.detach().double().cpu()
                probs = torch.sigmoid(logits)
            else:
                probs = torch.as_tensor(self.adjacency()).detach().double().cpu()
                logits = torch.logit(probs, eps=PROB_EPS)
        p, lg = probs.numpy().copy(), logits.numpy()
        if p.ndim != 2 or p.shape[0] != p.shape[1]:
            raise ValueError(f"adjacency must be a square (d, d) matrix, got {p.shape}")
        # As the trainer's edge_probabilities: no self-loops.
        np.fill_diagonal(p, 0.0)
        return p, lg

    def _graph_fields(self, probs: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
        logit_mean, logit_std = health.logit_stats(graph_metrics.off_diagonal(logits))
        threshold = graph_metrics.tuned_threshold(probs)
        reference = self.reference_matrix(probs.shape[0])
        # Without a reference, top-k keeps d edges, as the trainer does.
        k = probs.shape[0] if reference is None else int(reference.sum())
        return {
            "logit_mean": logit_mean,
            "logit_std": logit_std,
            "edges_at_05": health.count_edges_above(probs, 0.5),
            "threshold_tuned": threshold,
            "edges_tuned": int(graph_metrics.threshold_graph(probs, threshold).sum()),
            "edges_topk": int(graph_metrics.topk_graph(probs, k).sum()),
        }

    def _eval_fields(self, probs: np.ndarray) -> dict[str, Any]:
        reference = self.reference_matrix(probs.shape[0])
        if reference is None:
            return {}
        tuned = graph_metrics.threshold_graph(probs, graph_metrics.tuned_threshold(probs))
        scores = graph_metrics.score_graph(tuned, reference)
        return dataclasses.asdict(scores)

    def _is_eval(self, epoch: int) -> bool:
        if callable(self.eval_every):
            return bool(self.eval_every(epoch))
        return epoch % self.eval_every == 0

    def reference_matrix(self, d: int) -> np.ndarray | None:
        """The run's reference graph as a (d, d) 0/1 matrix in `run.variables` order."""
        if not self._reference_read:
            self._reference_read = True
            self._reference = reference_matrix(
                getattr(self.run, "reference", None), getattr(self.run, "variables", None)
            )
        if self._reference is not None and self._reference.shape != (d, d):
            raise ValueError(f"the run's reference has {self._reference.shape[0]} variables, "
                             f"the adjacency {d}")
        return self._reference

    def _flat_params(self) -> np.ndarray:
        if not self._params:
            return np.zeros(0)
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1).double().cpu() for p in self._params])
        return flat.numpy()

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the optimizer hook and stop observing clip_grad_norm_ (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._hook.remove()
        clip_observer.unregister(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reference_matrix(
    edges: Sequence[tuple[str, str]] | None, variables: Sequence[str] | None
) -> np.ndarray | None:
    """(cause, effect) name pairs → a 0/1 (d, d) matrix, B[i, j] = 1 for i → j."""
    if edges is None:
        return None
    if variables is None:
        raise ValueError("reference: needs the run's variables to order its names")
    index = {name: i for i, name in enumerate(variables)}
    matrix = np.zeros((len(variables), len(variables)), dtype=np.int8)
    for cause, effect in edges:
        for name in (cause, effect):
            if name not in index:
                raise ValueError(f"reference: {name!r} is not one of the run's variables")
        matrix[index[cause], index[effect]] = 1
    return matrix


def _current_run() -> RunLike | None:
    import causalwatch

    return causalwatch.current_run()  # type: ignore[no-any-return]


# The documented entry point keeps its explicit signature, for readers and type checkers:
# it differs from `Watch` in `run` (None: the current run; a `Watch` without one stays
# unbound until `bind`, as the Lightning callback's must), and shares its defaults.
def watch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    adjacency: Adjacency,
    clip: float | None = None,
    run: RunLike | None = None,
    eval_every: EvalEvery = EVAL_EVERY,
    term_norm_every: int = TERM_NORM_EVERY,
    observe_clip: bool = True,
) -> Watch:
    """Fill each logged row's health fields from `model`, `optimizer` and `adjacency`.

    `adjacency`: the (d, d) logits parameter (P = sigmoid), or a callable returning (d, d)
    probabilities. `clip`: the threshold of clip% (and of `watch.clip_grad_norm_()`); a
    user's own `torch.nn.utils.clip_grad_norm_` call on the model's parameters is observed
    and its `max_norm` used instead (`observe_clip=False` stops that). `run`: default
    `cw.current_run()`. `eval_every`: epochs whose row gets SHD/F1 and the graph (every n-th,
    or a predicate on the epoch).
    """
    return Watch(
        model, optimizer, adjacency=adjacency, clip=clip,
        run=run if run is not None else _current_run(),
        eval_every=eval_every, term_norm_every=term_norm_every, observe_clip=observe_clip,
    )


def loss_terms(terms: Mapping[str, Tensor | float]) -> None:
    """`loss_terms` of the most recently opened watch (no-op without one): for code that
    does not hold the watch, such as a LightningModule's `training_step`."""
    watch = clip_observer.latest()
    if isinstance(watch, Watch):
        watch.loss_terms(terms)
