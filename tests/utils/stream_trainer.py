"""The streaming stand-in trainer: the real `python -m trainer` around a loop that learns nothing.

For tests about what happens to a run's stream (storage, concurrency, a killed backend,
pages that follow it), not about what the model learns. Pointed at by `Settings.python`
(`CAUSALWATCH_PYTHON`), every trainer the backend spawns is `trainer.cli.main` itself:
the same argv, config checks, data loading, run files, emitter (buffering, resending),
stop signal and final messages. Only `trainer.loop.train` is replaced, by `stream`, which
sends healthy records (`utils.records`) at a steady pace and never imports torch: a
stand-in costs a fraction of a second of CPU where a real trainer costs several.

`STANDIN_EPOCH_SECONDS` (environment) sets the pace; 0.1 s by default.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from trainer.config import TrainConfig
from trainer.protocol import EVAL_FIELDS
from trainer.result import GraphSink, RecordSink, RunResult, ShouldStop

EPOCH_SECONDS_ENV = "STANDIN_EPOCH_SECONDS"

LAUNCHER = """\
#!{python}
# Stand-in for `python -m trainer ...`: the real command line around a loop that learns nothing.
import sys
sys.path[:0] = [{tests!r}]
from utils.stream_trainer import main
sys.exit(main(sys.argv[1:]))
"""


def write_stream_trainer(folder: Path) -> Path:
    """The stand-in interpreter, executable, in `folder`."""
    path = folder / "stream_python"
    if path.exists():  # written once per folder: a running trainer may be reading it
        return path
    path.write_text(LAUNCHER.format(python=sys.executable, tests=str(Path(__file__).parents[1])))
    path.chmod(0o755)
    return path


def _probabilities(data: Any) -> list[list[float]]:
    """A confident graph: the reference's edges where there is one, else a chain."""
    d = len(data.variables)
    if data.reference is not None:
        return [[0.9 if data.reference[i][j] else 0.05 for j in range(d)] for i in range(d)]
    return [[0.9 if j == i + 1 else 0.05 for j in range(d)] for i in range(d)]


def _config_offset(cfg: TrainConfig) -> float:
    return 1e-3 * (cfg.seed % 100) + cfg.lambda_sparse


def stream(
    cfg: TrainConfig,
    data: Any,
    run_id: str,
    *,
    on_record: RecordSink | None = None,
    on_graph: GraphSink | None = None,
    checkpoint_path: Path | None = None,
    should_stop: ShouldStop | None = None,
) -> RunResult:
    """`trainer.loop.train`'s contract, with records from `utils.records.epoch_record`."""
    from utils.records import epoch_record

    pace = float(os.environ.get(EPOCH_SECONDS_ENV, "0.1"))
    started = time.perf_counter()
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    status, reason = "completed", f"ran all {cfg.epochs} epochs"
    last_epoch = cfg.epochs_to_run
    for epoch in range(1, last_epoch + 1):
        time.sleep(pace)
        evaluated = cfg.is_eval_epoch(epoch)
        fields: dict[str, Any] = {"time": time.time(), "loss_total": 1.0 + 1.0 / epoch,
                                  "epoch_seconds": pace, "eta_seconds": pace * (last_epoch - epoch)}
        if evaluated:
            # Falling, so every evaluation is the best so far (a checkpoint the loop would keep),
            # and set apart by the config, so that a sweep's members have one best.
            fields |= {"val_recon": 0.5 + 1.0 / epoch + _config_offset(cfg), "is_best": True}
            if data.reference is None:  # val_recon alone: nothing to compare the graph with
                fields |= dict.fromkeys(f for f in EVAL_FIELDS if f != "val_recon")
        record = epoch_record(epoch, run_id, evaluated=evaluated, **fields)
        history.append(record)
        if record["is_best"]:
            best = record
        if on_record is not None:
            on_record(record)
        if evaluated and on_graph is not None:
            on_graph(epoch, _probabilities(data))
        if should_stop is not None and should_stop():
            status, reason = "stopped", f"stop requested after epoch {epoch}"
            break
    return RunResult(
        status=status, reason=reason, epochs_run=len(history),
        best_epoch=None if best is None else best["epoch"], best_record=best,
        last_record=history[-1] if history else None,
        seconds=time.perf_counter() - started, history=history,
    )


def main(argv: list[str]) -> int:
    from trainer.cli import main as trainer_main

    if argv[:2] == ["-m", "trainer"]:  # how the backend calls its interpreter
        argv = argv[2:]
    return trainer_main(argv, train=stream)
