"""Epoch records as the trainer sends them, for tests that feed rules, stores and backends.

Every field's default is derived from `trainer.protocol.EpochRecord`, so a field added to
the protocol reaches every test without an edit here: an optional field takes its own
default, a required number is 0 unless `HEALTHY` names a plausible value for it.
"""

from __future__ import annotations

import json
from typing import Any, cast

from trainer.protocol import EpochRecord, MessageType, make_message

# A healthy epoch of a 13-edge reference graph: the rules stay silent and every scorecard
# guide is met, so a test changes only the numbers its behaviour is about.
HEALTHY: dict[str, Any] = {
    "lr": 1e-4,
    "loss_total": 1.0,
    "loss_recon": 0.9,
    "loss_sparse": 0.05,
    "loss_acyclic": 0.03,
    "loss_disen": 0.02,
    "share_recon": 90.0,
    "share_sparse": 5.0,
    "share_acyclic": 3.0,
    "share_disen": 2.0,
    "clip_pct": 0.0,
    "grad_norm_mean": 0.2,
    "grad_norm_max": 0.4,
    "logit_mean": -1.0,
    "logit_std": 1.0,
    "edges_at_05": 12,
    "threshold_tuned": 0.5,
    "edges_tuned": 12,
    "edges_topk": 13,
    "epoch_seconds": 0.3,
    "eta_seconds": 10.0,
}
# What an evaluation epoch adds: the comparison with the reference graph.
EVALUATION: dict[str, Any] = {
    "shd": 10,
    "f1": 0.5,
    "precision": 0.5,
    "recall": 0.5,
    "f1_skeleton": 0.6,
    "val_recon": 0.5,
}


def _derived_default(name: str) -> Any:
    field = EpochRecord.model_fields[name]
    if not field.is_required():
        return field.get_default(call_default_factory=True)
    return 0 if field.annotation is int else 0.0


def epoch_record(
    epoch: int = 1, run_id: str = "run-1", *, evaluated: bool = False, **fields: Any
) -> dict[str, Any]:
    """A valid EpochRecord as a dict: healthy, with `EVALUATION` when `evaluated`.

    Validated, so every record a test feeds could have come off the wire; a test that
    needs an invalid one changes a key of the result.
    """
    record = {name: _derived_default(name) for name in EpochRecord.model_fields}
    record |= HEALTHY | {"run_id": run_id, "epoch": epoch, "step": 10 * epoch,
                         "time": 1.7e9 + epoch}
    if evaluated:
        record |= EVALUATION
    record |= fields
    return EpochRecord.model_validate(record).model_dump()


def message(run_id: str, seq: Any, msg_type: str = "epoch", **payload: Any) -> dict[str, Any]:
    """One protocol message; tests may send types and seqs the protocol refuses."""
    return make_message(cast("MessageType", msg_type), run_id, seq, **payload)


def frame(run_id: str, seq: Any, msg_type: str = "epoch", **payload: Any) -> str:
    """`message` as the text frame the websocket carries."""
    return json.dumps(message(run_id, seq, msg_type, **payload))
