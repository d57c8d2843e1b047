"""GET /api/record-fields and /api/run-id-format: the protocol's facts the dashboard works
by, served from trainer/protocol.py."""

from __future__ import annotations

import re

from backend.api.presets import record_fields, run_id_format
from trainer.protocol import EpochRecord, new_run_id


def test_record_fields_follow_the_protocol() -> None:
    served = record_fields()
    assert served["fields"] == list(EpochRecord.model_fields)
    assert served["eval_fields"] == ["shd", "f1", "precision", "recall", "f1_skeleton",
                                     "val_recon"]
    assert served["loss_terms"] == ["recon", "sparse", "acyclic", "disen"]
    # Each term names its three record fields.
    for term in served["loss_terms"]:
        assert {f"loss_{term}", f"share_{term}", f"grad_norm_{term}"} <= set(served["fields"])


def test_the_run_id_format_takes_the_trainers_ids_and_refuses_paths() -> None:
    pattern = re.compile(run_id_format()["pattern"])
    assert pattern.fullmatch(new_run_id("standard"))
    for bad in ("", ".", "..", "../x", "a/b", "-r1", "x" * 81):
        assert pattern.fullmatch(bad) is None, bad
