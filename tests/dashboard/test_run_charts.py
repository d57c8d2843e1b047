"""The run page's chart boxes and an sdk run's fix snippet, without a browser."""

from __future__ import annotations

from dashboard.components import alert_card, fix_snippet
from dashboard.figures import empty_live_figures
from dashboard.run_charts import chart, waiting_line


def test_a_fix_reads_as_python_to_paste() -> None:
    assert fix_snippet({"lambda_sparse": 0.05, "standardize": True, "sparsify_method": "sigmoid"}
                       ) == "lambda_sparse = 0.05\nstandardize = True\nsparsify_method = 'sigmoid'"


def test_an_sdk_runs_card_has_a_snippet_and_no_restart_button() -> None:
    alert = {"id": 7, "rule": "clip_high", "severity": "warning", "epoch": 11, "cause": "c",
             "message": "m", "suggested_changes": {"learning_rate_init": 1e-6}}
    sdk = str(alert_card(alert, {}, can_restart=True, sdk=True))
    assert "fix-snippet-7" in sdk and "learning_rate_init = 1e-06" in sdk and "Clipboard" in sdk
    assert "restart-with-fix" not in sdk
    ours = str(alert_card(alert, {}, can_restart=True))
    assert "restart-with-fix" in ours and "fix-snippet" not in ours


def test_each_chart_names_the_fields_it_waits_for() -> None:
    assert waiting_line(["clip_pct"], "sdk") == (
        "waiting for clip_pct: not logged by your training loop yet")
    many = ["share_recon", "share_sparse", "share_acyclic", "share_disen"]
    assert waiting_line(many, "run") == "waiting for share_recon, share_sparse, share_acyclic, …"
    edges = empty_live_figures(13, "reference", terms=("recon",))["edges"]
    box = str(chart("edges", edges, "sdk"))
    assert "waiting for edges_at_05, edges_tuned, edges_topk" in box
