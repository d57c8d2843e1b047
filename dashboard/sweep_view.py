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
MEMBER_NAME = re.compile(r"^sweep ([0-9a-f]{4,32}): (.*)$")
FIELD_KEY = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=")
ENDED = frozenset({"completed", "stopped", "failed"})
# Lines of the parallel-coordinates plot: the best member stands out, the rest recede.
BEST_COLOR = "#e74c3c"
OTHER_COLOR = "#95a5a6"
RESULT_VAL_RECON = "best val_recon"
RESULT_F1 = "F1 at best ckpt"


def sweep_id_of(name: str | None) -> str | None:
    """The sweep a run belongs to, read from its name; None for any other run."""
    match = MEMBER_NAME.match(name or "")
    return match.group(1) if match else None


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


def all_ended(members: Sequence[Run]) -> bool:
    return bool(members) and all(m["status"] in ENDED for m in members)


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


def _dimension(label: str, values: list[Any]) -> dict[str, Any]:
    """A parcoords axis. Numbers keep their scale, ticked at the values swept (written as
    format.py writes them); anything else (a method name, a bool) gets one tick each."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    distinct = sorted(set(values)) if numeric else list(dict.fromkeys(map(fmt.number, values)))
    if numeric:
        return {"label": label, "values": [float(v) for v in values],
                "tickvals": [float(v) for v in distinct],
                "ticktext": [fmt.number(v) for v in distinct]}
    index = {text: i for i, text in enumerate(distinct)}
    return {"label": label, "values": [index[fmt.number(v)] for v in values],
            "tickvals": list(range(len(distinct))), "ticktext": distinct}


def _result_dimension(label: str, values: list[float]) -> dict[str, Any]:
    ticks = sorted(set(values))
    if len(ticks) > 5:  # a tick per member would overlap: ends and middle
        ticks = [ticks[0], ticks[len(ticks) // 2], ticks[-1]]
    return {"label": label, "values": values, "tickvals": ticks,
            "ticktext": [fmt.number(v) for v in ticks]}


def plotted_members(sweep: Mapping[str, Any]) -> list[Run]:
    """The members with a result to draw: a best val_recon from their final summary."""
    return [m for m in sweep["members"] if best_val_recon(m) is not None]


def parcoords_figure(sweep: Mapping[str, Any]) -> go.Figure:
    """Grid fields (seed last) → best val_recon, and F1 at the best checkpoint when every
    plotted member has one; one line per member with a result, the sweep's best in red."""
    members = plotted_members(sweep)
    fields = grid_fields(sweep["members"])
    dims = [_dimension(f, [(m.get("config") or {}).get(f) for m in members]) for f in fields]
    if members:
        dims.append(_result_dimension(RESULT_VAL_RECON, [best_val_recon(m) or 0.0
                                                         for m in members]))
        f1 = [m.get("f1_at_best") for m in members]
        if all(isinstance(v, int | float) for v in f1):
            dims.append(_result_dimension(RESULT_F1, [float(v) for v in f1]))
    best = sweep.get("best")
    fig = go.Figure(go.Parcoords(
        dimensions=dims,
        line={"color": [1 if m["id"] == best else 0 for m in members],
              "colorscale": [[0, OTHER_COLOR], [1, BEST_COLOR]], "cmin": 0, "cmax": 1},
        meta={"members": [m["id"] for m in members], "best": best},
    ))
    fig.update_layout(height=380, margin={"l": 60, "r": 60, "t": 60, "b": 30},
                      template="plotly_white", uirevision="keep")
    return fig


def sweeps_summary(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Every sweep among `runs`: its id, member count, how many ended, first queued; newest
    first."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        sweep_id = sweep_id_of(run.get("name"))
        if sweep_id is not None:
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
