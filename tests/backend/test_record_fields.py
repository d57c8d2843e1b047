"""GET /api/record-fields: the record's facts the dashboard draws by, from trainer/protocol.py."""

from __future__ import annotations

from backend.api.presets import record_fields
from trainer.protocol import EpochRecord


def test_record_fields_follow_the_protocol() -> None:
    served = record_fields()
    assert served["fields"] == list(EpochRecord.model_fields)
    assert served["eval_fields"] == ["shd", "f1", "precision", "recall", "f1_skeleton",
                                     "val_recon"]
    assert served["loss_terms"] == ["recon", "sparse", "acyclic", "disen"]
    # Each term names its three record fields.
    for term in served["loss_terms"]:
        assert {f"loss_{term}", f"share_{term}", f"grad_norm_{term}"} <= set(served["fields"])
