"""trainer/protocol.py: the facts the backend reads from the trainer's contract."""

from __future__ import annotations

from trainer.data.reference import UCI_REFERENCE_EDGES
from trainer.emitter import Emitter
from trainer.protocol import (
    EVAL_FIELDS,
    MESSAGE_TYPES,
    RECORD_FIELDS,
    UCI_REFERENCE_SIZE,
    EpochRecord,
    make_message,
)


def test_uci_reference_size_is_the_shipped_graph() -> None:
    assert len(UCI_REFERENCE_EDGES) == UCI_REFERENCE_SIZE


def test_eval_fields_are_the_optional_fields_marked_in_the_record() -> None:
    assert EVAL_FIELDS == ("shd", "f1", "precision", "recall", "f1_skeleton", "val_recon")
    assert set(EVAL_FIELDS) <= set(RECORD_FIELDS)
    assert all(not EpochRecord.model_fields[f].is_required() for f in EVAL_FIELDS)


def test_message_types_are_what_the_trainer_sends() -> None:
    assert "alert" not in MESSAGE_TYPES
    assert make_message("epoch", "r", 3, record={})["type"] == "epoch"


def test_the_emitter_refuses_a_type_outside_the_protocol() -> None:
    emitter = Emitter("http://127.0.0.1:9", "r")
    try:
        emitter.send("alert", alert={})  # type: ignore[arg-type]
    except ValueError as err:
        assert "msg_type must be one of" in str(err)
    else:
        raise AssertionError("an alert message was queued")


def test_the_loss_breakdown_has_exactly_the_protocol_terms() -> None:
    from dataclasses import fields

    from trainer.losses import LossBreakdown
    from trainer.protocol import LOSS_TERMS

    assert tuple(f.name for f in fields(LossBreakdown)) == LOSS_TERMS


def test_new_run_ids_are_valid_and_distinct() -> None:
    import re

    from trainer.protocol import RUN_ID_PATTERN, new_run_id

    ids = {new_run_id("standard") for _ in range(20)}
    assert len(ids) == 20
    assert all(re.match(RUN_ID_PATTERN, i) and "-standard-" in i for i in ids)
