"""GET /api/config-schema: every config field, its choices served as data."""

from __future__ import annotations

from backend.api.presets import config_schema
from trainer.config import TrainConfig


def test_every_field_is_served_with_its_choices() -> None:
    fields = {f.name: f for f in config_schema()}
    assert list(fields) == list(TrainConfig.model_fields)
    assert fields["acyclicity"].choices == ["notears", "dagma"]
    assert fields["edge_mask"].choices == ["gumbel", "soft"]
    assert fields["learning_rate_max"].choices is None
    assert fields["learning_rate_max"].allowed == "number > 0 and <= 1.0"
