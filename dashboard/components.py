"""Reusable pieces of the pages: a run's reference, status badge, alert card, scorecard,
config diff, form field."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import quote

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import format as fmt
from dashboard import ids
from dashboard.labels import lineage_labels

STATUS_COLORS = {
    "queued": "secondary",
    "running": "info",
    "completed": "success",
    "stopped": "warning",
    "failed": "danger",
}
SEVERITY_COLORS = {"info": "info", "warning": "warning", "critical": "danger"}
# "n/a": an F1/SHD criterion of a run without a reference graph, never judged.
CRITERION_COLORS = {"met": "success", "missed": "danger", "pending": "secondary", "n/a": "light"}


# The API's `reference_kind` of a run without a reference graph (a CSV without one).
NO_REFERENCE_KIND = "none"


def has_reference(run: dict[str, Any]) -> bool:
    """False for a run scored against nothing: its records carry no SHD or F1."""
    return bool(run.get("has_reference", True))


def run_reference(run: dict[str, Any]) -> tuple[int | None, str]:
    """The reference graph's edge count as the API serves it (None without one, or while
    unknown) and its kind, in words until the trainer names it."""
    if not has_reference(run):
        return None, NO_REFERENCE_KIND
    kind = (run.get("data") or {}).get("reference_kind")
    if not kind:
        synthetic = run["config"].get("dataset") == "synthetic"
        kind = "ground truth" if synthetic else "plausibility reference"
    return run.get("reference_size"), kind


def status_badge(status: str, badge_id: str | None = None) -> dbc.Badge:
    """A run's status as a coloured badge; `badge_id` only where one run's badge is shown."""
    extra = {"id": badge_id} if badge_id else {}
    return dbc.Badge(status, color=STATUS_COLORS.get(status, "secondary"),
                     className="ms-2 text-uppercase", **extra)


def format_value(value: Any) -> str:
    """A config value as text: `1e-5`, `10`, `true`, `—` for none (see dashboard/format.py)."""
    return fmt.number(value)


def score_text(value: float | int | None) -> str:
    """An F1 (two decimals) or an SHD (an integer); a dash while there is none."""
    return fmt.count(value) if isinstance(value, int) else fmt.score(value)


def best_checkpoint_text(run: Mapping[str, Any]) -> str:
    """F1/SHD at the label-free best checkpoint: what a user without the reference would pick."""
    epoch = run.get("best_epoch")
    if epoch is None:
        return "no best checkpoint yet"
    return (f"epoch {epoch}: F1 {score_text(run.get('f1_at_best'))}, "
            f"SHD {score_text(run.get('shd_at_best'))}")


def max_f1_text(run: Mapping[str, Any]) -> str:
    """The highest F1 of any evaluation: found by looking at the reference, so a ceiling."""
    value = run.get("max_f1_seen")
    if value is None:
        return "—"
    return f"{score_text(value)} (epoch {run.get('max_f1_epoch')})"


def config_diff(old: Mapping[str, Any], patch: Mapping[str, Any]) -> html.Table | html.Div:
    """A suggested change as a readable diff: field, current value → suggested value."""
    if not patch:
        return html.Div("no config change suggested", className="text-muted small")
    rows = [
        html.Tr([
            html.Td(html.Code(field)),
            html.Td(html.Del(format_value(old.get(field)), className="text-danger")),
            html.Td("→"),
            html.Td(html.Ins(format_value(value), className="text-success fw-bold")),
        ])
        for field, value in patch.items()
    ]
    return html.Table(html.Tbody(rows), className="table table-sm mb-2 config-diff")


VERIFICATION_TEXT = {
    "verified": ("verified by a probe run", "success"),
    "pending": ("unverified: probe runs in progress", "secondary"),
    "refuted": ("unverified: every probe refuted it; best guess", "warning"),
    "cancelled": ("unverified: probes cancelled; best guess", "secondary"),
}


def _before_after(pair: Mapping[str, Any] | None, text: Callable[[Any], str]) -> str:
    """A probe's measurement as `before → after`, each value written by `text`."""
    if not pair:
        return fmt.MISSING
    return f"{text(pair.get('before'))} → {text(pair.get('after'))}"


def _val_recon_text(value: Any) -> str:
    # A probe's verdict turns on a 5% change of val_recon: a fourth digit shows it.
    return fmt.number(value, digits=4)


def probe_rows(verification: Mapping[str, Any]) -> html.Ul:
    """One line per probe: its fix, the verdict, and the numbers; refuted ones struck out."""
    items = []
    for probe in verification.get("probes", []):
        metric = probe.get("metric") or {}
        name = metric.get("name", "metric")
        numbers = (
            f"{name} {_before_after(metric, partial(fmt.metric, name))}, "
            f"val_recon {_before_after(probe.get('val_recon'), _val_recon_text)}, "
            f"F1 {_before_after(probe.get('f1'), fmt.score)}"
            if probe["verdict"] != "pending" and "epoch" in probe else ""
        )
        text: list[Any] = [html.Code(probe["label"]), f" {probe['verdict']}"]
        if numbers:
            text.append(f" at epoch {probe['epoch']}: {numbers}")
        if probe.get("reasons"):
            text.append(f" ({'; '.join(probe['reasons'])})")
        body: Any = html.Del(text) if probe["verdict"] == "refuted" else html.Span(text)
        best = probe["label"] == verification.get("best")
        items.append(html.Li(body, className="fw-semibold" if best else None))
    return html.Ul(items, className="small mb-2 probe-list")


def fix_snippet(fix: Mapping[str, Any]) -> str:
    """A fix as Python assignments to paste into one's own training script."""
    return "\n".join(f"{field} = {value!r}" for field, value in fix.items())


def _apply_fix(alert: Mapping[str, Any], fix: Mapping[str, Any], *, can_restart: bool,
               sdk: bool) -> Any:
    """How the user acts on a fix: one click restarts a run we train; a run of kind sdk is
    the user's own loop, which no restart reaches, so its changed values are there to copy."""
    if sdk and fix:
        snippet_id = f"fix-snippet-{alert['id']}"
        return html.Div([
            html.Div("Your training loop runs it: set these and start it again.",
                     className="small text-muted mb-1"),
            html.Div([
                html.Pre(fix_snippet(fix), id=snippet_id, className="fix-snippet mb-0 p-2"),
                dcc.Clipboard(target_id=snippet_id, title="copy",
                              className="fix-copy position-absolute top-0 end-0 m-1"),
            ], className="position-relative bg-light border rounded"),
        ])
    return dbc.Button(
        "Restart with this fix",
        id={"type": ids.RESTART, "alert": alert["id"]},
        color="primary", size="sm", disabled=not (can_restart and fix),
        # Advice in words only (no config field can act on it): no button to press.
        style=None if fix else {"display": "none"},
    )


def alert_card(alert: Mapping[str, Any], config: Mapping[str, Any], can_restart: bool,
               *, sdk: bool = False) -> dbc.Card:
    """One red flag; `sdk`: the run is the user's own loop (a snippet to copy, no restart)."""
    where = "at start" if alert.get("epoch") is None else f"epoch {alert['epoch']}"
    fix = alert.get("fix", alert["suggested_changes"])
    verification = alert.get("verification")
    button = _apply_fix(alert, fix, can_restart=can_restart, sdk=sdk)
    status: list[Any] = []
    if fix:
        text, color = VERIFICATION_TEXT.get(
            (verification or {}).get("status", ""), ("unverified: not probed", "light")
        )
        status = [dbc.Badge(text, color=color, className="mb-2 verification",
                            text_color="dark" if color == "light" else None)]
    return dbc.Card(
        dbc.CardBody([
            html.Div([
                dbc.Badge(alert["severity"], color=SEVERITY_COLORS.get(alert["severity"], "info"),
                          className="me-2 text-uppercase"),
                html.Strong(alert["rule"].replace("_", " ")),
                html.Span(f" · {where}", className="text-muted small"),
            ], className="mb-1"),
            html.Div(alert["cause"], className="fw-semibold"),
            html.P(alert["message"], className="small mb-2 alert-message"),
            *status,
            probe_rows(verification) if verification else html.Div(),
            config_diff(config, fix),
            button,
        ]),
        className=f"mb-2 border-{SEVERITY_COLORS.get(alert['severity'], 'info')} alert-card",
        id=f"alert-{alert['rule']}",
    )


def scorecard_table(card: Mapping[str, Any]) -> html.Div:
    blocks = []
    for level in card.get("levels", []):
        achieved = level.get("achieved")
        head = {True: ("achieved", "success"), False: ("not achieved", "danger")}.get(
            achieved, ("pending", "secondary"))
        rows = [
            html.Tr([
                html.Td(c["name"]),
                html.Td(c["description"], className="small text-muted"),
                html.Td(dbc.Badge(c["status"], color=CRITERION_COLORS.get(c["status"], "secondary"),
                                  text_color="dark" if c["status"] == "n/a" else None,
                                  className="criterion-status")),
                html.Td(fmt.metric(c["name"], c.get("observed")), className="small"),
            ])
            for c in level.get("criteria", [])
        ]
        blocks.append(html.Div([
            html.Div([html.Strong(level["level"]),
                      dbc.Badge(head[0], color=head[1], className="ms-2")]),
            html.Table(html.Tbody(rows), className="table table-sm mb-3"),
        ], className="scorecard-level"))
    return html.Div(blocks)


# A `bool | None` field's three states; parse_field reads "default" as None.
TRISTATE = [{"label": "auto (the dataset's default)", "value": "default"},
            {"label": "on", "value": "true"}, {"label": "off", "value": "false"}]


def field_input(info: Mapping[str, Any], value: Any) -> dbc.Col:
    """One config field of the launch form, with room for the backend's message under it.

    Its box (`FIELD_BOX`) is what the form hides for another dataset and marks as changed
    from the preset; `FIELD_PRESET` says the preset's value then."""
    name = info["name"]
    allowed = info.get("allowed", "")
    field_id = {"type": ids.FIELD, "name": name}
    kind = str(info.get("type", ""))
    if kind == "bool":
        control: Any = dbc.Switch(id=field_id, value=bool(value), label="on",
                                  className="mt-1")
    elif kind == "bool | None":
        shown = "default" if value is None else str(bool(value)).lower()
        control = dbc.Select(id=field_id, options=TRISTATE, value=shown)
    elif info.get("choices"):
        control = dbc.Select(id=field_id, value=value,
                             options=[{"label": str(o), "value": o} for o in info["choices"]])
    else:
        control = dbc.Input(id=field_id, value="" if value is None else str(value), type="text",
                            debounce=False, placeholder="default" if value is None else None)
    return dbc.Col(
        html.Div([
            # Dash renders a dict id as its sorted, compact JSON: the label points at that.
            dbc.Label(name, html_for=json.dumps({"name": name, "type": ids.FIELD},
                                                separators=(",", ":"), sort_keys=True),
                      className="small fw-semibold mb-0"),
            control,
            dbc.FormFeedback(id={"type": ids.FIELD_FEEDBACK, "name": name}, type="invalid"),
            html.Div(id={"type": ids.FIELD_PRESET, "name": name}, className="small preset-was"),
            dbc.FormText(allowed if kind not in ("bool", "bool | None") else "", className="small"),
        ], className="mb-2"),
        id={"type": ids.FIELD_BOX, "name": name}, className="field-box",
        md=4, lg=3,
    )


def preset_note(value: Any) -> str:
    """The preset's value under a changed field, in the words of the field's control."""
    if isinstance(value, bool):
        return "preset: on" if value else "preset: off"
    return f"preset: {'default' if value is None else format_value(value)}"


def field_changed(value: Any, preset_value: Any) -> bool:
    """Whether a form value differs from the preset's: "0.0005" is the preset's 5e-4."""
    return bool(parse_field(value) != preset_value)


def parse_field(text: Any) -> Any:
    """A form value as the JSON type it spells; the backend validates ranges and names."""
    if not isinstance(text, str):
        return text
    value = text.strip()
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("", "none", "null", "default"):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value


# What makes inline markdown of plain text: emphasis, code, links and images, raw HTML and
# entities, strikethrough, and the escape itself. Block syntax cannot start inside a link's text.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()<>!&~])")


def markdown_text(text: str) -> str:
    """`text` as markdown that renders as exactly that text: a run named
    `x](https://evil.example) [x` must not become a link of its own."""
    one_line = " ".join(text.split())  # a line break could end the table cell's paragraph
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line)


def run_link(text: str, run_id: str) -> str:
    """A markdown link to a run's page, labelled with user-given `text`."""
    return f"[{markdown_text(text)}](/run/{quote(run_id, safe='')})"


def runs_table_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per run, oldest first: a new run appends, so the table's row selection (kept
    by index) stays on the runs the user ticked. The run and its parent show as lineage
    labels; the full name is the row's `name`, for a tooltip."""
    labels = lineage_labels(runs)
    rows = []
    for r in sorted(runs, key=lambda r: r["created_at"]):
        epoch = r.get("last_epoch") or 0
        parent = r.get("parent_id")
        rows.append({
            "id": r["id"],
            "name": r.get("name") or r["id"],
            "run": run_link(labels[r["id"]], r["id"]),
            "status": r["status"],
            "preset": r["preset"],
            "progress": f"{epoch}/{r['epochs_total']}",
            "best_epoch": r.get("best_epoch"),
            "f1_at_best": _rounded(r.get("f1_at_best")),
            "shd_at_best": r.get("shd_at_best"),
            "max_f1_seen": _rounded(r.get("max_f1_seen")),
            "alerts": r.get("open_alerts", 0),
            "started": (r.get("started_at") or r["created_at"])[:19].replace("T", " "),
            "parent": run_link(labels.get(parent, parent), parent) if parent else "",
        })
    return rows


def _rounded(value: float | None) -> float | None:
    # Still a number, so the table sorts and filters it as one; as many decimals as a score
    # gets everywhere else (dashboard/format.py).
    return None if value is None else round(value, fmt.SCORE_DECIMALS)


def dataset_options(
    files: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Dropdown options for the CSV files and the reference graphs the backend offers."""
    csv_options, reference_options = [], []
    for f in files:
        where = "uploaded" if f["source"] == "upload" else "data dir"
        columns = f.get("columns") or []
        shown = ", ".join(columns[:4]) + (", …" if len(columns) > 4 else "")
        detail = f"{where}, {len(columns)} columns: {shown}" if columns else where
        option = {"label": f"{f['name']} ({detail})", "value": f["name"]}
        (csv_options if f["kind"] == "csv" else reference_options).append(option)
    return csv_options, reference_options


def decode_upload(contents: str) -> bytes:
    """dcc.Upload's `data:<type>;base64,<payload>` as the file's bytes."""
    _, _, payload = contents.partition(",")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the browser sent the file in an unexpected form") from None


def data_overrides(
    dataset: str | None, data_file: str | None, reference_file: str | None
) -> dict[str, Any]:
    """The Data section's choices as config overrides; the files only matter for csv."""
    if not dataset:
        return {}
    if dataset != "csv":
        return {"dataset": dataset, "data_file": None, "reference_file": None}
    return {"dataset": "csv", "data_file": data_file or None,
            "reference_file": reference_file or None}
