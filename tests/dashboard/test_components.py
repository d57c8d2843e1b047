"""dashboard/components.py: form fields built from the config schema the backend serves."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc

from dashboard.components import field_input


def _control(col: dbc.Col) -> Any:
    return col.children.children[1]


def test_a_field_with_choices_is_a_select_of_exactly_them() -> None:
    # Words in `allowed` are for people; the options come from `choices` alone.
    info = {"name": "sparsify_method", "type": "Literal", "allowed": "pick, any, of, these",
            "choices": ["topk", "sigmoid"]}
    control = _control(field_input(info, "sigmoid"))
    assert isinstance(control, dbc.Select)
    assert [o["value"] for o in control.options] == ["topk", "sigmoid"]
    assert control.value == "sigmoid"


def test_a_field_without_choices_is_a_text_input() -> None:
    info = {"name": "epochs", "type": "int", "allowed": "one of many", "choices": None}
    control = _control(field_input(info, 40))
    assert isinstance(control, dbc.Input) and control.value == "40"
