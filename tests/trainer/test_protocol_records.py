"""What the wire format accepts and refuses (trainer/protocol.py): record bounds, an SDK
run's partial records, the user's own keys, graphs and the started data."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError
from utils.records import epoch_record

from trainer.protocol import (
    MAX_CUSTOM_KEYS,
    MAX_INT,
    RUN_ID_PATTERN,
    EpochRecord,
    GraphSnapshot,
    PartialEpochRecord,
    StartedData,
)


def refused(model: type[Any], value: dict[str, Any], field: str) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(value)
    errors = info.value.errors()
    assert [e["loc"][0] for e in errors] == [field], errors
    return str(errors[0]["msg"])


@pytest.mark.parametrize(("field", "ok", "bad"), [
    ("epoch", [1, MAX_INT], [0, MAX_INT + 1]),
    ("step", [0, MAX_INT], [-1]),
    ("share_recon", [0.0, 100.0], [-0.1, 100.1]),
    ("clip_pct", [0.0, 100.0], [-1e-9, 250.0]),
    ("edges_tuned", [0], [-1, MAX_INT + 1]),
    ("shd", [None, 0], [-1]),
    ("epoch_seconds", [0.0], [-0.5]),
    ("grad_norm_recon", [None, 0.0], [-1.0]),
])
def test_record_bounds(field: str, ok: list[Any], bad: list[Any]) -> None:
    for value in ok:
        assert getattr(EpochRecord.model_validate({**epoch_record(), field: value}), field) == value
    for value in bad:
        refused(EpochRecord, {**epoch_record(), field: value}, field)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_in_every_float_field(value: float) -> None:
    floats = [name for name, f in EpochRecord.model_fields.items()
              if f.annotation in (float, float | None)]
    assert "loss_total" in floats and "f1" in floats
    for name in floats:
        refused(EpochRecord, {**epoch_record(), name: value}, name)


def test_a_record_has_no_keys_beyond_the_protocol() -> None:
    refused(EpochRecord, {**epoch_record(), "accuracy": 0.9}, "accuracy")


def test_a_partial_record_needs_only_its_key_and_keeps_every_bound() -> None:
    required = {n for n, f in PartialEpochRecord.model_fields.items() if f.is_required()}
    assert required == {"run_id", "epoch"}
    assert set(PartialEpochRecord.model_fields) == set(EpochRecord.model_fields)
    partial = PartialEpochRecord.model_validate({"run_id": "r", "epoch": 3, "loss_recon": 0.5})
    assert (partial.loss_recon, partial.clip_pct, partial.share_recon) == (0.5, None, None)
    refused(PartialEpochRecord, {"run_id": "r", "epoch": 1, "clip_pct": 150.0}, "clip_pct")
    refused(PartialEpochRecord, {"run_id": "r", "epoch": 0}, "epoch")
    refused(PartialEpochRecord, {"run_id": "r", "epoch": 1, "edges_tuned": -1}, "edges_tuned")
    refused(PartialEpochRecord, {"run_id": "r", "epoch": 1, "loss_total": "inf"}, "loss_total")
    refused(PartialEpochRecord, {"run_id": "r", "epoch": 1, "nonsense": 1.0}, "nonsense")
    # The full record still requires what our trainer always measures.
    refused(EpochRecord, {k: v for k, v in epoch_record().items() if k != "lr"}, "lr")


def test_custom_keys_are_bounded_in_name_count_and_value() -> None:
    ok = {"acc": 0.9, "val/top-1": 0.5, "layer.3_norm": 2.0, "k" * 64: 1.0}
    assert epoch_record(custom=ok)["custom"] == ok
    many = {f"m{i}": float(i) for i in range(MAX_CUSTOM_KEYS)}
    assert epoch_record(custom=many)["custom"] == many
    for bad, why in [
        ({**many, "one_more": 0.0}, f"at most {MAX_CUSTOM_KEYS} keys"),
        ({"k" * 65: 1.0}, "1–64 characters"),
        ({"has space": 1.0}, "1–64 characters"),
        ({"": 1.0}, "1–64 characters"),
        ({"acc": float("nan")}, "finite"),
    ]:
        assert why in refused(EpochRecord, {**epoch_record(), "custom": bad}, "custom")


def test_graph_snapshots_are_square_probability_matrices() -> None:
    assert GraphSnapshot(epoch=2, probabilities=[[0.0, 1.0], [0.5, 0.0]])
    for bad in ([], [[0.0, 0.5]], [[0.0], [0.1]], [[1.5]], [[-0.1]]):
        refused(GraphSnapshot, {"epoch": 2, "probabilities": bad}, "probabilities")
    too_big = [[0.0] * 501 for _ in range(501)]
    refused(GraphSnapshot, {"epoch": 2, "probabilities": too_big}, "probabilities")
    refused(GraphSnapshot, {"epoch": 0, "probabilities": [[0.0]]}, "epoch")


def test_started_data_types_what_it_carries() -> None:
    assert StartedData.model_validate({}).standardized is False
    assert StartedData.model_validate({"source": "kept", "standardized": True}).model_extra == {
        "source": "kept"}
    refused(StartedData, {"standardized": "yes"}, "standardized")
    refused(StartedData, {"variables": []}, "variables")
    refused(StartedData, {"stats": {"variance_ratio": -1.0}}, "stats")
    refused(StartedData, {"stats": {"near_deterministic": [{"column": "a", "r2": "inf"}]}},
            "stats")


@pytest.mark.parametrize(("run_id", "valid"), [
    ("20261128-071437-standard-c8829a", True),
    ("r1", True),
    ("a.b_c-D", True),
    ("x" * 80, True),
    ("x" * 81, False),
    ("", False),
    ("../escape", False),
    (".hidden", False),
    ("-flag", False),
    ("a b", False),
    ("a/b", False),
    ("r1\n", False),
    ("café", False),
])
def test_the_run_id_pattern_keeps_ids_safe_as_folder_names(run_id: str, valid: bool) -> None:
    assert (re.fullmatch(RUN_ID_PATTERN, run_id) is not None) == valid
