"""Metric records → Plotly figures. Pure functions, testable without a browser.

Every time-series trace carries `meta = {"field": <record field>}`: assets/live.js extends
each trace with that field of new records (`extendData`), so the live path never needs to
know how a figure was built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard import format as fmt

Record = Mapping[str, Any]

COLORS = {
    "navy": "#2c3e50",
    "teal": "#18bc9c",
    "orange": "#f39c12",
    "blue": "#3498db",
    "guide": "#95a5a6",
    "bad": "#e74c3c",
}
# The loss terms' lines, in the order GET /api/record-fields lists the terms.
TERM_COLORS = (COLORS["navy"], COLORS["teal"], COLORS["orange"], COLORS["blue"])
COMPARE_METRICS = {
    "clip_pct": "clip %",
    "loss_total": "total loss",
    "share_recon": "recon share %",
    "logit_std": "logit std",
    "lr": "learning rate",
    "edges_at_05": "edges > 0.5",
    "edges_tuned": "edges (tuned threshold)",
    "f1": "F1",
    "f1_skeleton": "skeleton F1",
    "shd": "SHD",
    "val_recon": "validation recon MSE",
    "grad_norm_mean": "pre-clip grad norm (mean)",
    "grad_norm_recon": "recon term grad norm",
    "grad_norm_sparse": "sparse term grad norm",
    "grad_norm_acyclic": "acyclic term grad norm",
    "grad_norm_disen": "disen term grad norm",
    "update_ratio": "update ratio ‖Δθ‖/‖θ‖",
}
# Spanning orders of magnitude: compared on a log axis.
LOG_METRICS = {"loss_total", "lr", "val_recon", "update_ratio",
               *(m for m in COMPARE_METRICS if m.startswith("grad_norm_"))}
# F1 and its kin live on [0, 1]: fixed nice ticks, not ticks synced to another axis's.
SCORE_AXIS = {"range": [0, 1.05], "tickmode": "linear", "tick0": 0, "dtick": 0.2,
              "tickformat": ".1f"}


# Plotly's toolbar (modebar) floats over the figure's top ~30 px: the title sits in a strip
# below it, so a long title is never covered by the toolbar.
MODEBAR_PX = 30
TITLE_PX = 24


def _layout(title: str, y_title: str, right: int = 20) -> dict[str, Any]:
    """The live charts' shared layout; `right` leaves room for a second y axis."""
    return {
        "title": {"text": title, "x": 0.02, "xanchor": "left", "font": {"size": 15},
                  "yref": "container", "y": 1, "yanchor": "top", "pad": {"t": MODEBAR_PX}},
        "margin": {"l": 55, "r": right, "t": MODEBAR_PX + TITLE_PX + 8, "b": 40},
        "height": 300,
        "template": "plotly_white",
        "legend": {"orientation": "h", "y": -0.25, "x": 0},
        "xaxis_title": "epoch",
        "yaxis": {"title": {"text": y_title}, "hoverformat": ".3~g"},
        "uirevision": "keep",  # live extensions keep the user's zoom
    }


# A log axis labels its decades as powers of ten (10⁻⁵, not Plotly's "10µ", which reads as
# a unit), and few ticks: over a decade or two Plotly's default labelled every digit 2…9
# between decades, a wall of small numbers; with at most 4 it labels 2 and 5 at most.
LOG_AXIS = {"type": "log", "exponentformat": "power", "nticks": 4}


def _base(title: str, y_title: str, *, log_y: bool = False) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(_layout(title, y_title))
    if log_y:
        fig.update_yaxes(LOG_AXIS)
    return fig


def _series(records: Sequence[Record], field: str) -> tuple[list[int], list[Any]]:
    pairs = [(r["epoch"], r.get(field)) for r in records if r.get(field) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


# An evaluation series shows its points as markers while it has at most this many; past it
# live.js draws it as a line. Every marker is an SVG node redrawn on each live update: the
# accuracy chart's three series at 500 evaluations took ~100 ms a redraw with markers, ~15 ms
# without (WebGL, scattergl, took ~30 ms: not faster than a plain line, and without a GPU
# it is drawn on the CPU; docs/benchmarks.md).
LIVE_MARKER_LIMIT = 100


def _line(
    records: Sequence[Record], field: str, name: str, *, markers: bool = False, **style: Any
) -> go.Scatter:
    # Per-epoch series are lines: redrawing hundreds of SVG markers on every live update
    # cost ~150 ms per record. Evaluation-only series are sparse and keep their markers
    # while they are short.
    x, y = _series(records, field)
    markers = markers and len(x) <= LIVE_MARKER_LIMIT
    meta: dict[str, Any] = {"field": field}
    if markers:
        meta["markers_until"] = LIVE_MARKER_LIMIT
    mode = "lines+markers" if markers else "lines"
    return go.Scatter(x=x, y=y, name=name, mode=mode, marker={"size": 5}, meta=meta, **style)


def _guides(
    fig: go.Figure, lines: Sequence[tuple[float, str]], yref: str = "y", *,
    first_slot: int = 0, slots: int | None = None,
) -> None:
    """Dotted guide lines, each labelled in its own slot along the x axis: lines a few units
    apart (clip's 5% and 10%, logit std's 0.05/0.1/0.2 on a 0–3 axis) would otherwise print
    their labels on top of each other. Slots are fractions of the plot's width, so the labels
    stay apart at any zoom and whatever range the live data gives the y axis."""
    slots = slots or len(lines)
    for i, (value, label) in enumerate(lines):
        fig.add_hline(y=value, yref=yref,
                      line={"dash": "dot", "color": COLORS["guide"], "width": 1})
        fig.add_annotation(
            x=(first_slot + i) / slots, xref="paper", xanchor="left", y=value, yref=yref,
            yanchor="bottom", text=label, showarrow=False,
            font={"size": 10, "color": COLORS["guide"]},
        )


# The scorecard's level lines per metric, as GET /api/thresholds gives them (hashable, so
# the empty figures can be cached on them): ((metric, ((value, label), ...)), ...).
Guides = tuple[tuple[str, tuple[tuple[float, str], ...]], ...]
NO_GUIDES: Guides = ()


def level_guides(thresholds: Mapping[str, Any]) -> Guides:
    """Each level's threshold of clip %, logit std and F1, labelled with the level."""
    out = []
    for metric, target in thresholds.get("level_targets", {}).items():
        lines = tuple(
            (float(value), f"{fmt.metric(metric, float(value))} {level.lower()}")
            for level, value in target["by_level"].items()
            if value is not None
        )
        if lines:
            out.append((metric, lines))
    return tuple(out)


def _level_lines(
    fig: go.Figure, guides: Guides, metric: str, yref: str = "y", slots: int | None = None
) -> None:
    _guides(fig, dict(guides).get(metric, ()), yref=yref, slots=slots)


def clip_figure(records: Sequence[Record], guides: Guides = NO_GUIDES) -> go.Figure:
    fig = _base("Clipped steps", "% of steps clipped")
    fig.add_trace(_line(records, "clip_pct", "clip %", line={"color": COLORS["bad"]}))
    _level_lines(fig, guides, "clip_pct")
    fig.update_yaxes(range=[-2, 102])
    return fig


def _term_color(i: int) -> str:
    return TERM_COLORS[i % len(TERM_COLORS)]


def loss_shares_figure(records: Sequence[Record], terms: Sequence[str]) -> go.Figure:
    """Each term's share of the summed weighted terms, one line per term on a log axis.

    Not a stacked area: when recon takes 99.99999% the regularizers' 1e-8% is the finding
    (nothing pushes the graph to be sparse or acyclic), and a 0–100% stack draws it as one
    solid block of recon. On a log axis 1e-8% sits eight decades below 1%, where the healthy
    shares (2–20%) are. A share of exactly 0 (a term switched off) shows as a gap."""
    fig = _base("Loss breakdown (% of the summed terms, log axis)", "% of loss", log_y=True)
    for i, term in enumerate(terms):
        fig.add_trace(_line(records, f"share_{term}", term, line={"color": _term_color(i)}))
    fig.update_yaxes(hoverformat=".2~g", ticksuffix="%")
    return fig


def loss_total_figure(records: Sequence[Record], terms: Sequence[str]) -> go.Figure:
    fig = _base("Loss (weighted terms, log axis)", "loss", log_y=True)
    fig.add_trace(_line(records, "loss_total", "total", line={"color": "black", "width": 2}))
    for i, term in enumerate(terms):
        fig.add_trace(_line(records, f"loss_{term}", term, line={"color": _term_color(i)}))
    return fig


def logit_std_figure(records: Sequence[Record], guides: Guides = NO_GUIDES) -> go.Figure:
    fig = _base("Adjacency logit spread", "std of logits")
    fig.add_trace(_line(records, "logit_std", "logit std", line={"color": COLORS["navy"]}))
    _level_lines(fig, guides, "logit_std")
    return fig


def grad_terms_figure(
    records: Sequence[Record], clip_norm: float | None, terms: Sequence[str]
) -> go.Figure:
    """Each weighted term's own gradient norm: which term the clip (on the total) answers to.

    Records from before these fields existed have no value: those points are left out, never
    drawn as zero. A norm of exactly 0 (a term switched off, e.g. before `acyclic_start`) has
    no place on a log axis and shows as a gap.
    """
    fig = _base("Gradient norm per term (pre-clip, log axis)", "‖∇ weighted term‖", log_y=True)
    for i, term in enumerate(terms):
        fig.add_trace(_line(records, f"grad_norm_{term}", term,
                            line={"color": _term_color(i)}))
    if clip_norm is not None and clip_norm > 0:
        fig.add_hline(y=clip_norm, line={"dash": "dash", "color": COLORS["bad"], "width": 1})
        # Annotations, unlike shapes, take log10 coordinates on a log axis (plotly.js #1258).
        fig.add_annotation(
            x=0, xref="paper", y=math.log10(clip_norm), yref="y", showarrow=False,
            xanchor="left", yanchor="bottom", text=f"clip threshold {clip_norm:g} (total norm)",
            font={"size": 10, "color": COLORS["bad"]},
        )
    return fig


def update_ratio_figure(records: Sequence[Record]) -> go.Figure:
    """‖θ_end − θ_start‖ / ‖θ_start‖ per epoch: the step size the learning rate really gives."""
    fig = _base("Update ratio ‖Δθ‖/‖θ‖ per epoch (log axis)", "‖Δθ‖ / ‖θ‖", log_y=True)
    fig.add_trace(_line(records, "update_ratio", "update ratio",
                        line={"color": COLORS["blue"]}))
    return fig


def lr_figure(records: Sequence[Record]) -> go.Figure:
    """One run's schedule on a linear axis, as TensorBoard and W&B draw it: warmup's ramp and
    the cosine's shape read directly, where a log axis over its one or two decades labelled
    every digit between them. Runs with different learning rates compare on a log axis."""
    fig = _base("Learning rate (SEM weights)", "lr")
    fig.add_trace(_line(records, "lr", "lr", line={"color": COLORS["blue"]}))
    fig.update_yaxes(rangemode="tozero", exponentformat="power", nticks=5)
    return fig


def edges_figure(records: Sequence[Record]) -> go.Figure:
    fig = _base("Edges", "edge count")
    fig.add_trace(_line(records, "edges_at_05", "p > 0.5", line={"color": COLORS["navy"]}))
    fig.add_trace(
        _line(records, "edges_tuned", "tuned threshold", line={"color": COLORS["teal"]})
    )
    fig.add_trace(_line(records, "edges_topk", "top-k", line={"color": COLORS["guide"]}))
    return fig


NO_REFERENCE_NOTE = "no reference graph: SHD/F1 not computed"


def accuracy_figure(
    records: Sequence[Record],
    reference_edges: int | None,
    reference_kind: str,
    guides: Guides = NO_GUIDES,
) -> go.Figure:
    """SHD and F1 against the reference graph; for a run without one (`reference_edges`
    None) a note in the chart's place: its records carry no SHD or F1 to draw."""
    if reference_edges is None:
        fig = _base("SHD and F1", "")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.add_annotation(text=NO_REFERENCE_NOTE, x=0.5, y=0.5, xref="paper", yref="paper",
                           showarrow=False, font={"size": 13, "color": COLORS["guide"]})
        return fig  # no traces: the live extension has nothing to extend here
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.update_layout(_layout(f"SHD and F1 vs the {reference_kind}", "SHD", right=55))
    fig.add_trace(_line(records, "shd", "SHD", markers=True, line={"color": COLORS["bad"]}),
                  secondary_y=False)
    fig.add_trace(_line(records, "f1", "F1", markers=True, line={"color": COLORS["teal"]}),
                  secondary_y=True)
    fig.add_trace(_line(records, "f1_skeleton", "skeleton F1", markers=True,
                        line={"color": COLORS["blue"], "dash": "dash"}), secondary_y=True)
    # The SHD axis keeps the grid; a second grid on F1's ticks would cross it.
    fig.update_yaxes(title_text="F1", showgrid=False, secondary_y=True, **SCORE_AXIS)
    fig.update_yaxes(rangemode="tozero", secondary_y=False)
    # The F1 levels take the first slots, the SHD line the last: four labels, four places.
    f1_levels = len(dict(guides).get("f1", ()))
    _level_lines(fig, guides, "f1", yref="y2", slots=f1_levels + 1)
    _guides(fig, ((reference_edges, f"SHD {reference_edges} = empty graph"),),
            first_slot=f1_levels, slots=f1_levels + 1)
    return fig


@lru_cache(maxsize=1)
def custom_figure() -> dict[str, Any]:
    """The chart of a training loop's own metrics (records' `custom`), without traces:
    live.js adds one line per key as keys arrive (trace field "custom.<key>")."""
    fig = _base("Your metrics (custom)", "value")
    return fig.to_plotly_json()  # type: ignore[no-any-return]


@lru_cache(maxsize=16)
def empty_live_figures(
    reference_edges: int | None,
    reference_kind: str,
    clip_norm: float | None = None,
    guides: Guides = NO_GUIDES,
    *,
    terms: tuple[str, ...],
) -> dict[str, dict[str, Any]]:
    """The run page's charts before any record, as plain dicts: the same for every run with
    this reference (None: none) and clip threshold, so built once (figure construction is
    the slow part of a page load)."""
    figs = live_figures([], reference_edges, reference_kind, clip_norm, guides, terms=terms)
    return {name: fig.to_plotly_json() for name, fig in figs.items()}


def live_figures(
    records: Sequence[Record],
    reference_edges: int | None,
    reference_kind: str,
    clip_norm: float | None = None,
    guides: Guides = NO_GUIDES,
    *,
    terms: Sequence[str],
) -> dict[str, go.Figure]:
    """Every live chart of the run page, keyed by its name in `ids.LIVE_GRAPHS`;
    `reference_edges` is None for a run without a reference graph; `terms` are the loss
    terms (GET /api/record-fields), one line each in the loss and gradient charts."""
    return {
        "clip": clip_figure(records, guides),
        "loss-shares": loss_shares_figure(records, terms),
        "loss-total": loss_total_figure(records, terms),
        "logit-std": logit_std_figure(records, guides),
        "lr": lr_figure(records),
        "edges": edges_figure(records),
        "accuracy": accuracy_figure(records, reference_edges, reference_kind, guides),
        "grad-terms": grad_terms_figure(records, clip_norm, terms),
        "update-ratio": update_ratio_figure(records),
    }


# The adjacency's height, fixed: cells near square for 13 variables (UCI's) beside the
# reference panel, smaller cells for more. A height left to the layout followed the red-flag
# column beside it (1,100-2,000 px, jumping as flags arrived).
ADJACENCY_HEIGHT = 480


def adjacency_figure(graph: Mapping[str, Any] | None, variables: Sequence[str] | None,
                     reference_edges: Sequence[Sequence[str]] | None) -> go.Figure:
    """Learned edge probabilities beside the reference graph (row = cause, column = effect);
    the learned ones alone for a run without a reference graph (`reference_edges` None)."""
    learned = "learned P(edge)" + (f" · epoch {graph['epoch']}" if graph else " · waiting")
    if reference_edges is None:
        fig = make_subplots(rows=1, cols=1, subplot_titles=(f"{learned} · no reference graph",))
    else:
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                            subplot_titles=(learned, "reference graph"))
    names = list(variables or [])
    if names:
        probs = graph["probabilities"] if graph else [[None] * len(names) for _ in names]
        short = [_short(n) for n in names]
        colorbar = {"len": 0.9, "thickness": 10, **({} if reference_edges is None else {"x": 0.44})}
        fig.add_trace(go.Heatmap(z=probs, x=short, y=short, zmin=0, zmax=1, colorscale="Blues",
                                 colorbar=colorbar,
                                 hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>"), 1, 1)
        if reference_edges is not None:
            index = {v: i for i, v in enumerate(names)}
            reference = [[0] * len(names) for _ in names]
            for cause, effect in reference_edges:
                if cause in index and effect in index:
                    reference[index[cause]][index[effect]] = 1
            fig.add_trace(go.Heatmap(z=reference, x=short, y=short, zmin=0, zmax=1,
                                     colorscale=[[0, "#ffffff"], [1, "#2c3e50"]],
                                     showscale=False,
                                     hovertemplate="%{y} → %{x}: %{z}<extra></extra>"), 1, 2)
        fig.update_yaxes(autorange="reversed")
        if reference_edges is None:  # one panel alone: square cells, not the full width
            fig.update_yaxes(scaleanchor="x", constrain="domain")
    fig.update_layout(height=ADJACENCY_HEIGHT, margin={"l": 90, "r": 20, "t": 40, "b": 90},
                      template="plotly_white")
    fig.update_xaxes(tickangle=45, tickfont={"size": 9})
    fig.update_yaxes(tickfont={"size": 9})
    return fig


COMPARE_MARKER_LIMIT = 1000


def compare_figure(runs: Mapping[str, Sequence[Record]], metric: str) -> go.Figure:
    """One metric of several runs overlaid. Plain SVG lines: with 10 runs × 500 epochs they
    draw in ~0.2 s and zoom in ~50 ms, faster than WebGL without a GPU (docs/benchmarks.md)."""
    label = COMPARE_METRICS.get(metric, metric)
    fig = _base(f"{label} by run", label, log_y=metric in LOG_METRICS)
    series = {name: _series(records, metric) for name, records in runs.items()}
    # Markers show where a sparse series (an evaluation-only metric) has its points; past a
    # few hundred points they only cost: every marker is an SVG node to redraw on zoom
    # (~0.46 s for 5,000, lines ~50 ms).
    points = sum(len(x) for x, _ in series.values())
    markers = points <= COMPARE_MARKER_LIMIT and any(_skips_epochs(x) for x, _ in series.values())
    for name, (x, y) in series.items():
        fig.add_trace({"type": "scatter", "x": x, "y": y, "name": name,
                       "mode": "lines+markers" if markers else "lines",
                       "marker": {"size": 4}, "meta": {"field": metric}})
    fig.update_layout(height=460, legend={"orientation": "v", "y": 1, "x": 1.02})
    return fig


def _skips_epochs(epochs: Sequence[int]) -> bool:
    """Whether a series leaves epochs out between its first and last point."""
    return len(epochs) > 1 and epochs[-1] - epochs[0] + 1 > len(epochs)


def _short(name: str) -> str:
    return name.replace("PT08.", "").replace("(GT)", "")
