"""A run's own files: metrics.jsonl (one record per line), train.log (one line per epoch)
and, once it has ended, outcome.json (how). Their names are the contract in
trainer/protocol.py: a backend reads them when it missed the messages.

The trainer writes these whether or not a backend listens, so a run is never lost.
Each line is flushed as it is written: a killed trainer leaves every finished epoch on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TextIO

from trainer.protocol import LOG_FILE, LOSS_TERMS, METRICS_FILE, OUTCOME_FILE, Outcome

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "best.pt"


def format_epoch_line(record: dict[str, Any], epochs: int) -> str:
    """The seed's log style: loss, breakdown %, clip %, LR, logit std, edges, F1/SHD, BEST."""
    parts = [
        f"epoch {record['epoch']:>4}/{epochs}",
        f"loss {record['loss_total']:.4e}",
        " ".join(f"{term} {record[f'share_{term}']:.1f}%" for term in LOSS_TERMS),
        f"clip {record['clip_pct']:5.1f}%",
        f"lr {record['lr']:.2e}",
        f"logit std {record['logit_std']:.4f}",
        "edges@0.5 {} tuned {} (t={:.3f})".format(
            record["edges_at_05"], record["edges_tuned"], record["threshold_tuned"]
        ),
    ]
    if record.get("f1") is not None:
        parts.append(
            f"F1 {record['f1']:.3f} skelF1 {record['f1_skeleton']:.3f} SHD {record['shd']}"
            f" val_recon {record['val_recon']:.4e}"
        )
    line = " | ".join(parts)
    return line + (" | BEST" if record.get("is_best") else "")


class RunFiles:
    """Writes one run's folder; usable as a context manager."""

    def __init__(self, run_dir: Path, epochs: int) -> None:
        self.run_dir = run_dir
        self.epochs = epochs
        run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics: TextIO = (run_dir / METRICS_FILE).open("a", encoding="utf-8")
        self._log: TextIO = (run_dir / LOG_FILE).open("a", encoding="utf-8")

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_FILE

    def write_config(self, config: dict[str, Any]) -> None:
        (self.run_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", "utf-8")

    def log(self, line: str) -> None:
        self._log.write(line.rstrip("\n") + "\n")
        self._log.flush()

    def record(self, record: dict[str, Any]) -> None:
        self._metrics.write(json.dumps(record, allow_nan=False) + "\n")
        self._metrics.flush()
        self.log(format_epoch_line(record, self.epochs))

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    def write_outcome(self, outcome: Outcome) -> None:
        """How the run ended, written whole or not at all: a reader never sees half a file."""
        tmp = self.run_dir / (OUTCOME_FILE + ".tmp")
        tmp.write_text(outcome.model_dump_json() + "\n", "utf-8")
        os.replace(tmp, self.run_dir / OUTCOME_FILE)

    def close(self) -> None:
        self._metrics.close()
        self._log.close()

    def __enter__(self) -> RunFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
