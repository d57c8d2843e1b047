"""REST: the presets, the config schema the launch form is built from, the record's
fields, the run-id format and the thresholds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend import thresholds
from backend.errors import error_responses, not_found
from backend.rules import RULES
from backend.schemas import FieldInfo, Preset, RuleInfo
from trainer.config import (
    PATCHES,
    PRESETS,
    TrainConfig,
    build_config,
    describe_field,
    field_choices,
)
from trainer.protocol import EVAL_FIELDS, LOSS_TERMS, RECORD_FIELDS, RUN_ID_PATTERN

router = APIRouter(prefix="/api", tags=["presets"])

DESCRIPTIONS = {
    "standard": "the seed's hyperparameters on raw UCI data (the configuration that failed)",
    "synthetic": "the standard hyperparameters on a synthetic ER graph with known truth",
    "uci": "the seed's adjusted hyperparameters on standardized UCI data",
}


@router.get("/presets", response_model=list[Preset])
def list_presets() -> list[Preset]:
    return [get_preset(name) for name in PRESETS]


@router.get("/presets/{name}", response_model=Preset, responses=error_responses(404))
def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise not_found(f"preset {name!r}")
    return Preset(
        name=name, config=build_config(name).model_dump(), description=DESCRIPTIONS.get(name, "")
    )


@router.get("/patches")
def list_patches() -> dict[str, dict[str, object]]:
    """The seed's emergency adjustments, by name."""
    return PATCHES


@router.get("/config-schema", response_model=list[FieldInfo])
def config_schema() -> list[FieldInfo]:
    """Every config field with its type, default and allowed values."""
    out = []
    for name, field in TrainConfig.model_fields.items():
        out.append(
            FieldInfo(
                name=name,
                type=getattr(field.annotation, "__name__", str(field.annotation)),
                default=field.default,
                allowed=describe_field(name),
                choices=field_choices(name),
                description=field.description,
            )
        )
    return out


@router.get("/record-fields")
def record_fields() -> dict[str, list[str]]:
    """The per-epoch record's fields in order, those measured on evaluation epochs only
    (null on the others), and the objective's loss terms: each term has its `loss_<term>`,
    `share_<term>` and `grad_norm_<term>` field."""
    return {
        "fields": list(RECORD_FIELDS),
        "eval_fields": list(EVAL_FIELDS),
        "loss_terms": list(LOSS_TERMS),
    }


@router.get("/run-id-format")
def run_id_format() -> dict[str, str]:
    """What a run id may be, as a regular expression: a client checks an id it was handed
    (a page's URL) before it builds a path from it."""
    return {"pattern": RUN_ID_PATTERN}


@router.get("/rules", response_model=list[RuleInfo])
def rules() -> list[RuleInfo]:
    """The red flags a run can raise, in the order they are checked."""
    return [
        RuleInfo(name=r.name, severity=str(r.severity), description=r.description,
                 metric=r.metric)
        for r in RULES
    ]


@router.get("/thresholds")
def get_thresholds() -> dict[str, Any]:
    """Every number runs are judged by: the scorecard levels (the charts' guide lines), the
    red flags' triggers, the expected loss breakdown and the probes' bounds."""
    return thresholds.as_dict()
