"""What a training run hands back, and the callbacks it reports through: no torch here, so
the command line's shell around training (files, stream, progress) loads without it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RecordSink = Callable[[dict[str, Any]], None]
GraphSink = Callable[[int, list[list[float]]], None]
ShouldStop = Callable[[], bool]


@dataclass
class RunResult:
    status: str  # "completed" | "early_stopped" | "stopped" | "failed"
    reason: str
    epochs_run: int
    best_epoch: int | None
    best_record: dict[str, Any] | None
    last_record: dict[str, Any] | None
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-ready digest for the `finished` message and the terminal."""
        best = self.best_record or {}
        last = self.last_record or {}
        return {
            "status": self.status,
            "reason": self.reason,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best_val_recon": best.get("val_recon"),
            # At the label-free best checkpoint; `max_f1_seen` is the best any epoch scored.
            "f1_at_best": best.get("f1"),
            "shd_at_best": best.get("shd"),
            "best_f1": best.get("f1"),
            "best_shd": best.get("shd"),
            "max_f1_seen": max(
                (r["f1"] for r in self.history if r.get("f1") is not None), default=None
            ),
            "final_f1": last.get("f1"),
            "final_shd": last.get("shd"),
            "seconds": round(self.seconds, 3),
        }


# `trainer.loop.train`'s shape: (cfg, data, run_id, *, on_record, on_graph, checkpoint_path,
# should_stop) -> RunResult, one `on_record` call per epoch.
Train = Callable[..., RunResult]
