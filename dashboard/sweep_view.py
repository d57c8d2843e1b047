"""A sweep as the page shows it: its members' grid values and results, and the
parallel-coordinates figure of grid fields → result. Pure: data in, rows and figures out.

A sweep has no table of its own in the backend: its members are runs named
`sweep <id>: <field>=<value> ... seed=<n>` (backend/sweeps.py). The field names come from
that name, their values from the run's config, so a value reads as the trainer took it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from dashboard import format as fmt

Run = Mapping[str, Any]

# The backend's member name; ids are hex (secrets.token_hex), the changes follow the colon.
MEMBER_PREFIX = "sweep "
MEMBER_NAME = re.compile(rf"^{MEMBER_PREFIX}([0-9a-f]{{4,32}}): (.*)$")
FIELD_KEY = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=")
# The least time between two re-reads of a sweep while members train: one costs a scorecard
# read per member that moved.
REFRESH_MS = 2000
ENDED = frozenset({"completed", "stopped", "failed"})
# Lines of the parallel-coordinates plot: the best member stands out, the rest recede.
BEST_COLOR = "#e74c3c"
BEST_ROW = {"backgroundColor": "#fdedec", "fontWeight": 600}  # the best line's red, light
OTHER_COLOR = "#95a5a6"
AXIS_COLOR = "#7b8a8b"
LOG_SPAN = 10  # an axis whose values span a decade or more is drawn on a log scale
MAX_TICKS = 5
RESULT_VAL_RECON = "best val_recon"
RESULT_F1 = "F1 at best ckpt"


def sweep_id_of(name: str | None) -> str | None:
    """The sweep a run belongs to, read from its name; None for any other run."""
    match = MEMBER_NAME.match(name or "")
    return match.group(1) if match else None


def member_prefix(sweep_id: str) -> str:
    """How the names of a sweep's members begin."""
    return f"{MEMBER_PREFIX}{sweep_id}: "


def member_changes(run: Run) -> str:
    """What the member changed, as its name says it (`lambda_sparse=0.01 seed=0`)."""
    match = MEMBER_NAME.match(run.get("name") or "")
    return match.group(2) if match else str(run.get("name") or run["id"])


def grid_fields(members: Sequence[Run]) -> list[str]:
    """The fields the sweep varies, in the members' name order, seed last.

    Only keys the run's config has: a value text with `x=` inside cannot add a field."""
    fields: list[str] = []
    for run in members:
        config = run.get("config") or {}
        for key in FIELD_KEY.findall(member_changes(run)):
            if key in config and key not in fields:
                fields.append(key)
    if "seed" in fields:
        fields = [f for f in fields if f != "seed"] + ["seed"]
    return fields


def best_val_recon(run: Run) -> float | None:
    """The lowest val_recon of the run, from its final summary: the backend's rule for the
    sweep's best (a completed member's `best_val_recon`); None until the run sends one."""
    value = (run.get("summary") or {}).get("best_val_recon")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return float(value) if math.isfinite(value) else None


def level_text(card: Mapping[str, Any] | None) -> str:
    """The highest scorecard level achieved; "none" once the first is missed, "pending"
    while the first is still open; "—" without a scorecard."""
    if not card or not card.get("levels"):
        return fmt.MISSING
    reached = None
    for level in card["levels"]:
        if level.get("achieved") is True:
            reached = level["level"]
            continue
        if reached is None:
            return "pending" if level.get("achieved") is None else "none"
        break
    return str(reached)


def member_rows(
    sweep: Mapping[str, Any], levels: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One row per member, in the order they were queued; every number as text."""
    fields = grid_fields(sweep["members"])
    rows = []
    for run in sweep["members"]:
        config = run.get("config") or {}
        rows.append({
            "id": run["id"],
            "changes": member_changes(run),
            "fields": {f: fmt.number(config.get(f)) for f in fields},
            "status": run["status"],
            "progress": f"{run.get('last_epoch') or 0}/{run['epochs_total']}",
            "f1_at_best": fmt.score(run.get("f1_at_best")),
            "max_f1_seen": fmt.score(run.get("max_f1_seen")),
            "best_val_recon": fmt.number(best_val_recon(run)),
            "level": levels.get(run["id"], fmt.MISSING),
            "best": run["id"] == sweep.get("best"),
        })
    return rows


def _axis(label: str, values: list[Any]) -> dict[str, Any]:
    """One vertical axis: where each member's value sits on it (0 bottom, 1 top), and its
    ticks. Numbers keep their scale (a log scale when they span a decade or more, as λ
    grids do), ticked at the values swept; anything else (a method name, a bool) gets one
    evenly spaced tick per value, in the order first seen."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not numeric:
        texts = list(dict.fromkeys(fmt.number(v) for v in values))
        step = 1 / (len(texts) - 1) if len(texts) > 1 else 0.0
        where = {t: (i * step if len(texts) > 1 else 0.5) for i, t in enumerate(texts)}
        return {"label": label, "y": [where[fmt.number(v)] for v in values],
                "ticks": [(where[t], t) for t in texts], "log": False,
                "texts": [fmt.number(v) for v in values]}
    numbers = [float(v) for v in values]
    distinct = sorted(set(numbers))
    log = bool(distinct) and distinct[0] > 0 and distinct[-1] / distinct[0] >= LOG_SPAN

    def scaled(v: float) -> float:
        return math.log10(v) if log else v

    low, high = (scaled(distinct[0]), scaled(distinct[-1])) if distinct else (0.0, 0.0)

    def place(v: float) -> float:
        return 0.5 if high == low else (scaled(v) - low) / (high - low)

    if len(distinct) > MAX_TICKS:  # a tick per member would overlap: the ends and middle
        distinct = [distinct[0], distinct[len(distinct) // 2], distinct[-1]]
    return {"label": label, "y": [place(v) for v in numbers],
            "ticks": [(place(v), fmt.number(v)) for v in distinct], "log": log,
            "texts": [fmt.number(v) for v in values]}


def plotted_members(sweep: Mapping[str, Any]) -> list[Run]:
    """The members with a result to draw: a best val_recon from their final summary."""
    return [m for m in sweep["members"] if best_val_recon(m) is not None]


def parallel_figure(sweep: Mapping[str, Any]) -> go.Figure:
    """Parallel coordinates: grid fields (seed last) → best val_recon, and F1 at the best
    checkpoint when every plotted member has one; a line per member with a result, the
    sweep's best in red and drawn on top.

    Plain SVG lines on one x axis, not go.Parcoords: Parcoords draws only with WebGL, which
    a browser without a GPU (the headless test browser among them) does not have, and the
    dashboard's charts are SVG (docs/benchmarks.md). Each axis spans its own min..max.
    """
    members = plotted_members(sweep)
    fields = grid_fields(sweep["members"])
    axes = [_axis(f, [(m.get("config") or {}).get(f) for m in members]) for f in fields]
    if members:
        axes.append(_axis(RESULT_VAL_RECON, [best_val_recon(m) for m in members]))
        f1 = [m.get("f1_at_best") for m in members]
        if all(isinstance(v, int | float) for v in f1):
            axes.append(_axis(RESULT_F1, f1))
    labels = [a["label"] + (" (log)" if a["log"] else "") for a in axes]
    xs = list(range(len(axes)))
    best = sweep.get("best")
    fig = go.Figure()
    for i in sorted(range(len(members)), key=lambda i: members[i]["id"] == best):
        run, is_best = members[i], members[i]["id"] == best
        fig.add_trace(go.Scatter(
            x=xs, y=[a["y"][i] for a in axes], mode="lines+markers",
            name=member_changes(run) + (" · best" if is_best else ""),
            line={"color": BEST_COLOR if is_best else OTHER_COLOR,
                  "width": 3.5 if is_best else 1.5},
            marker={"size": 6 if is_best else 4},
            text=[f"{a['label']} = {a['texts'][i]}" for a in axes], hovertemplate="%{text}",
            meta={"run": run["id"], "best": is_best},
        ))
    fig.update_layout(
        height=380, template="plotly_white", showlegend=False, hovermode="closest",
        dragmode=False,  # nothing to zoom on axes of their own scales
        margin={"l": 70, "r": 40, "t": 20, "b": 50},
        xaxis={"tickvals": xs, "ticktext": labels, "range": [-0.6, len(axes) - 0.4],
               "showgrid": False, "zeroline": False, "fixedrange": True},
        yaxis={"visible": False, "range": [-0.06, 1.06], "fixedrange": True},
        shapes=[{"type": "line", "x0": x, "x1": x, "y0": 0, "y1": 1,
                 "line": {"color": AXIS_COLOR, "width": 1}, "layer": "below"} for x in xs],
        annotations=[{"x": x, "y": y, "text": text, "showarrow": False, "xanchor": "right",
                      "xshift": -4, "font": {"size": 11, "color": AXIS_COLOR},
                      "bgcolor": "rgba(255, 255, 255, 0.85)"}
                     for x, a in zip(xs, axes, strict=True) for y, text in a["ticks"]],
        meta={"axes": labels, "members": [m["id"] for m in members], "best": best},
        uirevision="keep",
    )
    return fig


def sweeps_summary(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Every sweep among `runs`: its id, member count, how many ended, first queued; newest
    first."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        sweep_id = sweep_id_of(run.get("name"))
        # A restarted member keeps the name's prefix but is a child, not a member.
        if sweep_id is not None and not run.get("parent_id"):
            groups.setdefault(sweep_id, []).append(run)
    summary = [{
        "id": sweep_id,
        "members": len(members),
        "ended": sum(m["status"] in ENDED for m in members),
        "running": sum(m["status"] == "running" for m in members),
        "fields": grid_fields(members),
        "preset": members[0].get("preset"),
        "created": min(str(m["created_at"]) for m in members),
    } for sweep_id, members in groups.items()]
    return sorted(summary, key=lambda s: s["created"], reverse=True)
