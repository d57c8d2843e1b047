"""The run page's header: name and status, lineage, the best checkpoint's scores, the reason."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from dashboard import ids
from dashboard.components import best_checkpoint_text, max_f1_text, run_reference, status_badge
from dashboard.figures import NO_REFERENCE_NOTE
from dashboard.sweep_view import sweep_id_of


def header(run: dict[str, Any], label: str | None = None) -> html.Div:
    """`label` is the run's short lineage label (as the runs list shows it); the full name
    stays on the page, as the title's tooltip and the first words of the line below."""
    parent = run.get("parent_id")
    lineage: list[Any] = []
    if parent:
        lineage = [" · restarted from ", dcc.Link(parent, href=f"/run/{parent}"), " · ",
                   dcc.Link("compare with parent", href=f"/compare?runs={parent},{run['id']}",
                            id="compare-with-parent")]
    children = run.get("children") or []
    if children:
        lineage += [" · restarts: "] + [
            dcc.Link(c, href=f"/run/{c}", className="me-1") for c in children
        ]
    sweep_id = sweep_id_of(run.get("name"))
    if sweep_id:
        lineage += [" · member of ", dcc.Link(f"sweep {sweep_id}", href=f"/sweep/{sweep_id}",
                                              id=ids.RUN_SWEEP)]
    reason = run.get("status_reason")
    name = run.get("name") or run["id"]
    title = label or name
    # The full name once, where the label shortened it: a restart's default name repeats
    # its parent's, which is why the label is the title.
    full = [html.Span(name, id=ids.RUN_FULL_NAME), " · "] if title != name else []
    return html.Div([
        html.H3([html.Span(title, id=ids.RUN_TITLE, title=name),
                 status_badge(run["status"], ids.RUN_STATUS)]),
        html.Div([*full, f"{run['id']} · preset {run['preset']}", *lineage],
                 className="text-muted small"),
        _scores(run),
        html.Pre(reason, className="small mt-2 mb-0 run-reason") if reason else None,
    ])


def _scores(run: dict[str, Any]) -> html.Div:
    """The best checkpoint's F1/SHD beside the highest F1 seen, each named for what it is."""
    ref_size, ref_kind = run_reference(run)
    scored = f"F1/SHD vs the {ref_kind}" if ref_size is not None else NO_REFERENCE_NOTE
    return html.Div([
        html.Span("best checkpoint (label-free, lowest val_recon): ", className="text-muted"),
        html.Span(best_checkpoint_text(run), id=ids.RUN_F1_AT_BEST),
        html.Span(" · max F1 seen at any evaluation: ", className="text-muted"),
        html.Span(max_f1_text(run), id=ids.RUN_MAX_F1),
        html.Span(f" · {scored}", className="text-muted"),
    ], className="small mt-1")


def header_key(run: dict[str, Any]) -> list[Any]:
    """What the header shows: it is re-rendered only when this changes."""
    return [run.get("name"), run["status"], run.get("status_reason"), run.get("children"),
            *(run.get(k) for k in ("best_epoch", "f1_at_best", "shd_at_best", "max_f1_seen",
                                   "max_f1_epoch"))]
