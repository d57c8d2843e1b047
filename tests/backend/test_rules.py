"""Red-flag rules driven by hand-made metric histories (backend/rules.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from utils.app_client import AppBackend
from utils.records import epoch_record

from backend.rules import (
    RULE_NAMES,
    RULES,
    Finding,
    RunContext,
    Severity,
    evaluate,
)
from trainer.config import PATCHES, TrainConfig, build_config
from trainer.protocol import NO_REFERENCE_KIND, EpochRecord

UCI_REFERENCE_EDGES = 13
# An evaluation epoch of the empty graph against the 13-edge reference.
EMPTY = {"edges_tuned": 0, "shd": UCI_REFERENCE_EDGES, "f1": 0.0, "precision": 0.0, "recall": 0.0}


def make_record(epoch: int, **overrides: Any) -> dict[str, Any]:
    """A healthy record; even epochs are evaluation epochs."""
    evaluated = epoch % 2 == 0
    # Rising: a healthy run is not stalled.
    rising = {"f1": min(0.2 + 0.005 * epoch, 0.95)} if evaluated else {}
    return epoch_record(epoch, evaluated=evaluated, **{**rising, **overrides})


def make_history(epochs: Iterable[int], **overrides: Any) -> list[dict[str, Any]]:
    return [make_record(e, **overrides) for e in epochs]


def make_data(
    *, standardized: bool = True, ratio: float = 2.0, near: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The `started` message's data payload, UCI-shaped."""
    return {
        "name": "uci",
        "variables": [f"v{i}" for i in range(13)],
        "reference_kind": "plausibility reference",
        "reference_edges": [[f"v{i}", f"v{i + 1}"] for i in range(UCI_REFERENCE_EDGES)],
        "standardized": standardized,
        "stats": {
            "variance_ratio": ratio,
            "raw_variances": {"T": 0.16, "NOx(GT)": 0.16 * ratio},
            "near_deterministic": near or [],
        },
    }


def make_context(
    preset: str = "standard",
    overrides: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    data: dict[str, Any] | None = None,
    failure: str | None = None,
) -> RunContext:
    config = build_config(preset, overrides).model_dump()
    return RunContext(config=config, history=history or [], data=data, failure=failure)


def stream(ctx: RunContext) -> list[Finding]:
    """Evaluate as the ingest does: after each record, remembering what fired."""
    fired: set[str] = set()
    found: list[Finding] = []
    for n in range(len(ctx.history) + 1):
        step = RunContext(ctx.config, ctx.history[:n], ctx.data, ctx.failure)
        new = evaluate(step, fired)
        fired |= {f.rule for f in new}
        found += new
    return found


def only(findings: list[Finding], rule: str) -> Finding:
    matching = [f for f in findings if f.rule == rule]
    assert len(matching) == 1, f"{rule}: {findings}"
    return matching[0]


def names(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def assert_patch_applies(preset: str, overrides: dict[str, Any], finding: Finding) -> TrainConfig:
    """Every candidate fix validates on the run's config and changes what it names; the
    suggested change is the first candidate's."""
    before = build_config(preset, overrides)
    first = finding.candidates[0].changes if finding.candidates else {}
    assert finding.suggested_changes == first
    after = before
    for candidate in finding.candidates:
        assert candidate.changes and candidate.label and candidate.expected
        patched = build_config(preset, {**overrides, **candidate.changes})
        for key, value in candidate.changes.items():
            assert getattr(patched, key) == value
            assert getattr(before, key) != value, f"{key} already {value}: the patch is a no-op"
        after = patched if candidate is finding.candidates[0] else after
    return after


def labels(finding: Finding) -> list[str]:
    return [c.label for c in finding.candidates]


# --- the catalogue -----------------------------------------------------------------------


# The API's rule names and their severities, as a client reads them (plain strings).
SEVERITIES = {
    "clip_high": "warning",
    "logit_collapse": "warning",
    "recon_share_low": "warning",
    "regularizers_silent": "warning",
    "threshold_tuning_broken": "warning",
    "f1_stalled": "info",
    "non_finite": "critical",
    "empty_graph_collapse": "critical",
    "raw_variance": "warning",
    "near_deterministic": "info",
}
RULES_DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def test_rule_names_and_severities_are_the_api() -> None:
    assert {r.name: str(r.severity) for r in RULES} == SEVERITIES


def test_docs_table_lists_every_rule_with_its_severity() -> None:
    section = RULES_DOC.read_text().split("## The rules", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|[^|]*\| (\w+) \|", section, flags=re.MULTILINE)
    assert dict(rows) == SEVERITIES


def test_the_api_serves_the_catalogue_in_the_docs_order_with_the_thresholds_in_force(
    app_backend: AppBackend,
) -> None:
    served = app_backend.client.get("/api/rules").json()
    section = RULES_DOC.read_text().split("## The rules", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|[^|]*\| (\w+) \|", section, flags=re.MULTILINE)
    assert [(r["name"], r["severity"]) for r in served] == rows
    limits = app_backend.client.get("/api/thresholds").json()["rules"]
    clip = next(r for r in served if r["name"] == "clip_high")
    assert clip["metric"] == "clip_pct"
    assert f"clip% > {limits['clip_pct_max']:.0f} after epoch {limits['clip_after_epoch']}" \
        in clip["description"]


def test_a_healthy_run_raises_nothing() -> None:
    ctx = make_context("uci", history=make_history(range(1, 61)), data=make_data())
    assert stream(ctx) == []


def broken_history() -> list[dict[str, Any]]:
    """Everything wrong at once: clipped, collapsed, regularizer-dominated, empty, stalled."""
    broken = {
        "clip_pct": 100.0,
        "logit_std": 0.001,
        "share_recon": 20.0,
        "share_sparse": 80.0,
        "share_acyclic": 0.0,
        "share_disen": 0.0,
        "edges_tuned": 0,
        "edges_at_05": 0,
    }
    return [make_record(e, **(broken | EMPTY if e % 2 == 0 else broken)) for e in range(1, 41)]


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        ("standard", {}),
        ("synthetic", {}),
        ("uci", {}),
        ("uci", {"acyclicity": "dagma", "lambda_acyclic": 1.0}),
        ("uci", {"sparsify_method": "sigmoid", "adjacency_lr_scale": 1.0}),
        ("standard", {"latent_dim": 32, "hidden_dim": 64, "lambda_recon": 1000.0}),
    ],
)
def test_every_rule_fires_once_and_its_patch_validates(
    preset: str, overrides: dict[str, Any]
) -> None:
    standardized = build_config(preset, overrides).standardize_effective
    ctx = make_context(
        preset,
        overrides,
        history=broken_history(),
        data=make_data(standardized=standardized, ratio=1e6, near=[{"column": "AH", "r2": 0.9995}]),
        failure="non-finite gradient norm (nan) at epoch 42 step 3",
    )
    findings = stream(ctx)
    # Dominant regularizers (recon_share_low) are the opposite of silent ones.
    expected = set(RULE_NAMES) - {"regularizers_silent"}
    expected -= {"raw_variance"} if standardized else set()
    assert sorted(f.rule for f in findings) == sorted(expected)
    for finding in findings:
        assert finding.message and finding.cause and finding.evidence
        assert_patch_applies(preset, overrides, finding)
        assert finding.as_dict()["severity"] == SEVERITIES[finding.rule]


def test_already_fired_rules_are_skipped() -> None:
    ctx = make_context(history=make_history(range(1, 13), clip_pct=100.0))
    assert names(evaluate(ctx, set())) == {"clip_high"}
    assert evaluate(ctx, {"clip_high"}) == []
    fired = {"clip_high"}
    evaluate(ctx, fired)
    assert fired == {"clip_high"}  # evaluate never edits the caller's set


# --- clip_high ----------------------------------------------------------------------------


# Pre-clip norms of the standard preset on raw UCI (docs/rules.md): recon carries it all.
RAW_NORMS = {
    "clip_pct": 100.0, "grad_norm_mean": 2.18e4, "grad_norm_p90": 2.25e4, "grad_norm_max": 2.27e4,
    "grad_norm_recon": 2.18e4, "grad_norm_sparse": 1.3e-6, "grad_norm_acyclic": 1.3e-6,
    "grad_norm_disen": 1.1e-7, "update_ratio": 0.049,
}


def test_clip_high_from_the_loss_scale_rescales_every_weight() -> None:
    history = make_history(range(1, 20), **RAW_NORMS)
    finding = only(stream(make_context("standard", history=history)), "clip_high")
    assert finding.epoch == 11
    assert finding.severity is Severity.WARNING
    for text in ("100%", "> 50%", "epoch 11", "recon term carries 100%", "2.25e+04"):
        assert text in finding.message
    assert labels(finding) == ["rescale_losses", "clip_at_p90"]  # the LR is not too large
    factor = 0.5 * 1.0 / 2.25e4  # p90 to half the clip
    config = build_config("standard")
    for term in ("recon", "sparse", "acyclic", "disen"):
        want = getattr(config, f"lambda_{term}") * factor
        assert finding.suggested_changes[f"lambda_{term}"] == pytest.approx(want, rel=2e-3)
    assert "expected clip% 0" in finding.candidates[0].expected  # max × c = 0.5 < 1
    assert finding.candidates[1].changes == {"grad_clip_norm": 2.25e4}
    assert finding.evidence["grad_norm_recon"] == 2.18e4
    assert_patch_applies("standard", {}, finding)


# Two causes besides the loss scale, each with its own first fix (docs/rules.md, clip_high).
SPIKES = {"clip_pct": 60.0, "grad_norm_mean": 1.1, "grad_norm_p90": 1.3, "grad_norm_max": 9.0,
          "grad_norm_recon": 0.6, "grad_norm_sparse": 0.5, "grad_norm_acyclic": 0.0,
          "grad_norm_disen": 0.1, "update_ratio": 0.01}
LARGE_STEPS = {**SPIKES, "clip_pct": 70.0, "grad_norm_mean": 1.2, "grad_norm_p90": 1.6,
               "grad_norm_max": 2.0, "grad_norm_recon": 0.7, "grad_norm_sparse": 0.7,
               "update_ratio": 0.5}


@pytest.mark.parametrize(("norms", "said", "order", "changes"), [
    pytest.param(SPIKES, ["spikes", "9"], ["clip_at_p90", "rescale_losses"],
                 {"grad_clip_norm": 1.3}, id="spikes-clip-at-p90"),
    pytest.param(LARGE_STEPS, ["update_ratio 0.5 > 0.1"],
                 ["lower_lr", "rescale_losses", "clip_at_p90"],
                 {"learning_rate_max": pytest.approx(1e-4)}, id="large-steps-lower-lr"),
])
def test_clip_high_names_the_cause_and_offers_its_fix_first(
    norms: dict[str, float], said: list[str], order: list[str], changes: dict[str, Any]
) -> None:
    finding = only(evaluate(make_context(history=make_history(range(1, 12), **norms)), set()),
                   "clip_high")
    assert all(words in finding.message for words in said), finding.message
    assert labels(finding) == order
    assert finding.suggested_changes == changes
    assert_patch_applies("standard", {}, finding)


def test_clip_high_without_per_term_norms_still_rescales() -> None:
    # Records from before the per-term norms (or grad_norms_per_term off) carry None.
    history = make_history(range(1, 12), clip_pct=90.0, grad_norm_mean=3.0, grad_norm_max=4.0)
    finding = only(evaluate(make_context(history=history), set()), "clip_high")
    assert "per-term norms not measured" in finding.message
    assert labels(finding)[0] == "rescale_losses"
    assert finding.suggested_changes["lambda_recon"] == pytest.approx(10.0 * 0.5 / 3.0, rel=2e-3)


def test_clip_high_on_zero_norms_offers_nothing_it_cannot_compute() -> None:
    # Hand-fed records can say 100% clipped with every norm 0: no division by zero.
    zero = {"clip_pct": 100.0, "grad_norm_mean": 0.0, "grad_norm_max": 0.0,
            "grad_norm_p90": 0.0}
    finding = only(evaluate(make_context(history=make_history(range(1, 12), **zero)), set()),
                   "clip_high")
    assert "rescale_losses" not in labels(finding)


def test_clip_high_stays_silent_through_epoch_10_and_at_exactly_50() -> None:
    assert stream(make_context(history=make_history(range(1, 11), clip_pct=100.0))) == []
    at_threshold = make_history(range(1, 40), clip_pct=50.0)
    assert stream(make_context(history=at_threshold)) == []
    just_above = make_history(range(1, 12), clip_pct=50.5)
    assert "50.5%" in only(stream(make_context(history=just_above)), "clip_high").message


# --- regularizers_silent ---------------------------------------------------------------------

# The standard preset on standardized UCI: recon is everything (docs/rules.md).
SILENT = {"loss_recon": 0.76, "loss_sparse": 5.9e-6, "loss_acyclic": 0.0, "loss_disen": 1e-8,
          "share_recon": 100.0, "share_sparse": 0.0008, "share_acyclic": 0.0,
          "share_disen": 0.0}


def test_regularizers_silent_sets_each_weight_from_its_measured_term() -> None:
    overrides = {"standardize": True, "lambda_recon": 1.0, "lambda_sparse": 1e-6,
                 "lambda_acyclic": 3e-7, "lambda_disen": 1e-6}
    history = make_history(range(1, 6), **SILENT)
    finding = only(stream(make_context("standard", overrides, history=history)),
                   "regularizers_silent")
    assert finding.epoch == 3
    # λ' = λ × (target share / 70) × recon / term: sparse 15%, disen 7.5% of the loss.
    assert finding.suggested_changes == {
        "lambda_sparse": pytest.approx(1e-6 * 15 / 70 * 0.76 / 5.9e-6, rel=2e-3),
        "lambda_disen": pytest.approx(1e-6 * 7.5 / 70 * 0.76 / 1e-8, rel=2e-3),
    }
    for text in ("silent", "< 1%", "epochs 1–3", "acyclic", "not measurable", "sparse 10–20%"):
        assert text in finding.message
    assert "recon 76%, sparse 16%, disen 8%" in finding.candidates[0].expected
    assert_patch_applies("standard", overrides, finding)


def test_regularizers_silent_on_raw_wide_data_standardizes_first() -> None:
    raw = {**SILENT, "loss_recon": 5.2e6}
    ctx = make_context("standard", history=make_history(range(1, 4), **raw),
                       data=make_data(standardized=False, ratio=1.08e6))
    finding = only(evaluate(ctx, {"raw_variance"}), "regularizers_silent")
    assert labels(finding) == ["standardize", "rebalance_from_measured"]
    assert finding.suggested_changes == {"standardize": True}
    assert "1.08e+06" in finding.candidates[0].expected
    assert_patch_applies("standard", {}, finding)
    # Already standardized, or columns on one scale: the measured λ come first.
    for data in (make_data(standardized=True, ratio=1.08e6), make_data(standardized=False)):
        ctx = make_context("standard", history=make_history(range(1, 4), **raw), data=data)
        assert labels(only(evaluate(ctx, {"raw_variance"}), "regularizers_silent")) == [
            "rebalance_from_measured"]


def test_regularizers_silent_needs_three_epochs_and_is_quiet_when_they_speak() -> None:
    two = make_history(range(1, 3), **SILENT) + make_history(range(3, 6))
    assert "regularizers_silent" not in names(stream(make_context(history=two)))
    assert stream(make_context(history=make_history(range(1, 30)))) == []


# --- logit_collapse ----------------------------------------------------------------------


def test_logit_collapse_fires_after_epoch_15_with_the_seed_fix() -> None:
    history = make_history(range(1, 20), logit_std=0.04, logit_mean=-0.3)
    finding = only(stream(make_context("standard", history=history)), "logit_collapse")
    assert finding.epoch == 16
    assert finding.severity is Severity.WARNING
    for text in ("0.04", "< 0.05", "epoch 16", "-0.3"):
        assert text in finding.message
    assert finding.suggested_changes == PATCHES["sigmoid_sparsify"]
    assert_patch_applies("standard", {}, finding)


def test_logit_collapse_silent_through_epoch_15_and_at_exactly_005() -> None:
    assert stream(make_context(history=make_history(range(1, 16), logit_std=0.001))) == []
    assert stream(make_context(history=make_history(range(1, 30), logit_std=0.05))) == []


def test_logit_collapse_restores_a_slow_logit_learning_rate() -> None:
    # The real reproduction (docs/presets.md): uci with adjacency_lr_scale=1.
    overrides = {"adjacency_lr_scale": 1.0}
    ctx = make_context("uci", overrides, history=make_history(range(1, 17), logit_std=0.04))
    finding = only(evaluate(ctx, set()), "logit_collapse")
    default = TrainConfig.model_fields["adjacency_lr_scale"].default
    assert finding.suggested_changes == {
        "sparsify_method": "sigmoid",
        "adjacency_lr_scale": default,
    }
    assert_patch_applies("uci", overrides, finding)


@pytest.mark.parametrize(("scale", "expected"), [(20.0, 200.0), (2e5, 1e6), (1e6, None)])
def test_logit_collapse_under_sigmoid_speeds_up_the_logits(
    scale: float, expected: float | None
) -> None:
    overrides = {"sparsify_method": "sigmoid", "adjacency_lr_scale": scale}
    ctx = make_context("uci", overrides, history=make_history(range(1, 17), logit_std=0.01))
    finding = only(evaluate(ctx, set()), "logit_collapse")
    assert "already sigmoid" in finding.message
    want = {} if expected is None else {"adjacency_lr_scale": expected}
    assert finding.suggested_changes == want
    assert_patch_applies("uci", overrides, finding)


# --- recon_share_low ---------------------------------------------------------------------

LOW_SHARES = {"share_recon": 34.0, "share_sparse": 66.0, "share_acyclic": 0.0, "share_disen": 0.0}


def test_recon_share_low_needs_three_consecutive_epochs() -> None:
    history = make_history(range(1, 5)) + make_history(range(5, 12), **LOW_SHARES)
    finding = only(stream(make_context("uci", history=history)), "recon_share_low")
    assert finding.epoch == 7
    for text in ("34%", "below 50%", "3 consecutive", "epochs 5–7", "sparse at 66.0%"):
        assert text in finding.message
    # Measured first: λ' = λ × (target share / 70) × recon / term; the checklist second.
    config = build_config("uci")
    assert labels(finding) == ["rebalance_from_measured", "rebalance_losses"]
    assert finding.suggested_changes == {
        "lambda_sparse": pytest.approx(config.lambda_sparse * 15 / 70 * 0.9 / 0.05, rel=2e-3),
        "lambda_acyclic": pytest.approx(config.lambda_acyclic * 3.5 / 70 * 0.9 / 0.03, rel=2e-3),
        "lambda_disen": pytest.approx(config.lambda_disen * 7.5 / 70 * 0.9 / 0.02, rel=2e-3),
    }
    assert finding.candidates[1].changes == PATCHES["rebalance_losses"]
    assert_patch_applies("uci", {}, finding)


def test_recon_share_low_silent_on_two_epochs_exactly_50_or_all_zero() -> None:
    two = make_history(range(1, 3), **LOW_SHARES) + make_history(range(3, 5))
    assert stream(make_context(history=two)) == []
    dip = [*make_history(range(1, 3), **LOW_SHARES), make_record(3, share_recon=50.0)]
    assert stream(make_context(history=dip + make_history(range(4, 6), **LOW_SHARES))) == []
    zero = {"share_recon": 0.0, "share_sparse": 0.0, "share_acyclic": 0.0, "share_disen": 0.0}
    assert stream(make_context(history=make_history(range(1, 10), **zero))) == []


def test_recon_share_low_never_lowers_lambda_recon() -> None:
    overrides = {"lambda_recon": 1000.0}
    ctx = make_context("uci", overrides, history=make_history(range(1, 4), **LOW_SHARES))
    finding = only(evaluate(ctx, set()), "recon_share_low")
    assert finding.candidates[1].changes == {"lambda_sparse": 5e-7, "lambda_disen": 5e-7}
    assert_patch_applies("uci", overrides, finding)
    past = {"lambda_recon": 1000.0, "lambda_sparse": 1e-8, "lambda_disen": 1e-8}
    ctx = make_context("uci", past, history=make_history(range(1, 4), **LOW_SHARES))
    finding = only(evaluate(ctx, set()), "recon_share_low")
    assert finding.candidates[1].changes == {"lambda_recon": 10_000.0}
    assert_patch_applies("uci", past, finding)


# --- threshold_tuning_broken ----------------------------------------------------------------


def test_threshold_tuning_broken_fires_when_topk_finds_edges_but_tuning_none() -> None:
    history = [*make_history(range(1, 4)), make_record(5, edges_tuned=0, logit_std=1e-6)]
    finding = only(stream(make_context(history=history)), "threshold_tuning_broken")
    assert finding.epoch == 5
    for text in ("edges_tuned is 0", "edges_topk is 13", "(> 0)", "epoch 5", "1e-06"):
        assert text in finding.message
    assert finding.suggested_changes == PATCHES["sigmoid_sparsify"]
    assert_patch_applies("standard", {}, finding)


def test_threshold_tuning_broken_silent_when_topk_is_empty_too() -> None:
    history = make_history(range(1, 4), edges_tuned=0, edges_topk=0)
    assert "threshold_tuning_broken" not in names(stream(make_context(history=history)))
    assert stream(make_context(history=make_history(range(1, 4), edges_tuned=1))) == []


def test_threshold_tuning_broken_under_sigmoid_speeds_up_the_logits() -> None:
    overrides = {"sparsify_method": "sigmoid"}
    ctx = make_context("uci", overrides, history=[make_record(3, edges_tuned=0)])
    finding = only(evaluate(ctx, set()), "threshold_tuning_broken")
    assert finding.suggested_changes == {"adjacency_lr_scale": 200.0}
    assert_patch_applies("uci", overrides, finding)


# --- f1_stalled ------------------------------------------------------------------------------


def f1_history(f1_by_epoch: dict[int, float], last: int) -> list[dict[str, Any]]:
    """Evaluation at even epochs, F1 0.07 unless given."""
    return [
        make_record(e, f1=f1_by_epoch.get(e, 0.07)) if e % 2 == 0 else make_record(e)
        for e in range(1, last + 1)
    ]


def test_f1_stalled_fires_20_epochs_after_the_best() -> None:
    history = f1_history({2: 0.05, 4: 0.083}, last=40)
    finding = only(stream(make_context("standard", history=history)), "f1_stalled")
    assert finding.epoch == 24
    assert finding.severity is Severity.INFO
    for text in ("20 epochs", "epoch 24", "0.083 (epoch 4)", "up to epoch 4", "0.070"):
        assert text in finding.message
    assert finding.suggested_changes == PATCHES["bigger_model"]
    assert_patch_applies("standard", {}, finding)


def test_f1_stalled_waits_for_a_new_best_to_age_and_counts_ties_as_no_improvement() -> None:
    improved = f1_history({4: 0.083, 22: 0.09}, last=50)
    assert only(stream(make_context(history=improved)), "f1_stalled").epoch == 42
    tied = f1_history({4: 0.083, 22: 0.083}, last=30)
    assert only(stream(make_context(history=tied)), "f1_stalled").epoch == 24


def test_f1_stalled_silent_before_20_epochs_of_evaluations_and_on_rising_f1() -> None:
    assert stream(make_context(history=f1_history({2: 0.5}, last=21))) == []
    rising = f1_history({e: e / 100 for e in range(2, 61, 2)}, last=60)
    assert stream(make_context(history=rising)) == []


def test_f1_stalled_on_an_already_bigger_model_doubles_it() -> None:
    overrides = {"latent_dim": 32, "hidden_dim": 64}
    ctx = make_context("uci", overrides, history=f1_history({2: 0.3}, last=22))
    finding = only(evaluate(ctx, set()), "f1_stalled")
    assert finding.suggested_changes == {"latent_dim": 64, "hidden_dim": 128}
    assert_patch_applies("uci", overrides, finding)


# --- non_finite --------------------------------------------------------------------------------

DAGMA_FAILURE = "non-finite loss_acyclic (inf) at epoch 1 step 1"


def test_non_finite_under_dagma_suggests_notears_and_a_lower_lr() -> None:
    overrides = {"acyclicity": "dagma", "lambda_acyclic": 1.0}
    finding = only(stream(make_context("uci", overrides, failure=DAGMA_FAILURE)), "non_finite")
    assert finding.severity is Severity.CRITICAL
    assert finding.epoch == 1
    assert DAGMA_FAILURE in finding.message and "dagma" in finding.message
    assert finding.suggested_changes == {**PATCHES["lower_lr"], "acyclicity": "notears"}
    assert_patch_applies("uci", overrides, finding)


def test_non_finite_under_notears_lowers_the_lr_and_takes_the_epoch_from_history() -> None:
    ctx = make_context(
        "standard", history=make_history(range(1, 8)), failure="Non-finite gradient norm (nan)"
    )
    finding = only(evaluate(ctx, set()), "non_finite")
    assert finding.epoch == 7
    assert finding.suggested_changes == PATCHES["lower_lr"]
    assert_patch_applies("standard", {}, finding)


def test_non_finite_silent_on_other_failures() -> None:
    assert stream(make_context(failure="trainer exited with code -9")) == []
    assert stream(make_context(failure=None)) == []


# --- empty_graph_collapse ----------------------------------------------------------------------


def test_empty_graph_collapse_with_dominant_regularizers_rebalances() -> None:
    collapsed = make_record(6, share_recon=30.0, share_sparse=60.0, **EMPTY)
    history = [*make_history(range(1, 6)), collapsed]
    finding = only(
        stream(make_context("uci", history=history, data=make_data())), "empty_graph_collapse"
    )
    assert finding.severity is Severity.CRITICAL
    assert finding.epoch == 6
    for text in ("edges_tuned is 0", "SHD is 13", "13 edges", "plausibility reference", "30.0%"):
        assert text in finding.message
    assert labels(finding) == ["rebalance_from_measured", "rebalance_losses"]
    assert finding.candidates[1].changes == PATCHES["rebalance_losses"]
    assert_patch_applies("uci", {}, finding)


def test_empty_graph_collapse_with_tied_logits_lets_them_separate() -> None:
    history = [make_record(2, logit_std=0.0, **EMPTY)]
    finding = only(
        evaluate(make_context(history=history, data=make_data()), set()), "empty_graph_collapse"
    )
    assert finding.suggested_changes == PATCHES["sigmoid_sparsify"]
    assert_patch_applies("standard", {}, finding)


def test_empty_graph_collapse_silent_otherwise() -> None:
    data = make_data()
    cases = [
        make_record(2, edges_tuned=1, shd=UCI_REFERENCE_EDGES),  # not empty
        make_record(2, edges_tuned=0, shd=12),  # not the reference size
        make_record(3, edges_tuned=0),  # not an evaluation epoch
    ]
    for record in cases:
        assert "empty_graph_collapse" not in names(
            evaluate(make_context(history=[record], data=data), set())
        )
    # Without the started payload the reference size is unknown.
    no_data = evaluate(make_context(history=[make_record(2, **EMPTY)]), set())
    assert "empty_graph_collapse" not in names(no_data)


def test_without_a_reference_graph_the_rules_scored_against_it_stay_silent() -> None:
    """A CSV run without a reference: null F1/SHD never fire f1_stalled or
    empty_graph_collapse; the rules that need no reference still fire."""
    unscored = dict.fromkeys(("shd", "f1", "precision", "recall", "f1_skeleton"))
    history = [
        EpochRecord.model_validate({**r, **unscored}).model_dump() for r in broken_history()
    ]
    data = {**make_data(), "name": "csv", "reference_kind": NO_REFERENCE_KIND,
            "reference_edges": None}
    ctx = make_context("uci", {"dataset": "csv"}, history=history, data=data)
    fired = names(stream(ctx))
    assert fired == set(RULE_NAMES) - {
        "f1_stalled", "empty_graph_collapse", "raw_variance", "near_deterministic", "non_finite",
        "regularizers_silent",
    }
    # The same records scored against a reference do fire both.
    scored = make_context("uci", history=broken_history(), data=make_data())
    assert {"f1_stalled", "empty_graph_collapse"} <= names(stream(scored))


# --- data flags --------------------------------------------------------------------------------


def test_raw_variance_flags_unstandardized_data_at_start() -> None:
    ctx = make_context("standard", data=make_data(standardized=False, ratio=1.08e6))
    finding = only(evaluate(ctx, set()), "raw_variance")
    assert finding.epoch is None
    assert finding.severity is Severity.WARNING
    for text in ("1.08e+06", "above 10", "not standardized", "from T 0.16 to NOx(GT)"):
        assert text in finding.message
    assert finding.suggested_changes == {"standardize": True}
    assert_patch_applies("standard", {}, finding)


def test_raw_variance_silent_when_standardized_or_at_exactly_10() -> None:
    assert evaluate(make_context("uci", data=make_data(standardized=True, ratio=1e6)), set()) == []
    assert evaluate(make_context(data=make_data(standardized=False, ratio=10.0)), set()) == []
    assert evaluate(make_context(data=None), set()) == []


def test_near_deterministic_names_the_columns_and_suggests_no_config_change() -> None:
    near = [{"column": "C6H6(GT)", "r2": 0.99996}, {"column": "AH", "r2": 0.99931}]
    finding = only(
        evaluate(make_context("uci", data=make_data(near=near)), set()), "near_deterministic"
    )
    assert finding.epoch is None
    assert finding.severity is Severity.INFO
    for text in (
        "C6H6(GT) (R² 0.99996)",
        "AH (R² 0.99931)",
        "≥ 0.999",
        "dropping or merging",
        "no config field",
    ):
        assert text in finding.message
    assert finding.suggested_changes == {}
    assert finding.evidence["columns"] == near


def test_near_deterministic_silent_without_such_columns() -> None:
    assert evaluate(make_context("uci", data=make_data(near=[])), set()) == []


def test_f1_stalled_silent_once_the_reference_is_recovered_exactly() -> None:
    assert stream(make_context("synthetic", history=f1_history({2: 1.0}, last=40))) == []


def test_the_slimmed_history_ingest_keeps_gives_the_same_findings() -> None:
    """Ingest keeps whole records for the last FULL_HISTORY epochs only (bounded memory)."""
    from backend.rule_window import slimmed
    from backend.rules import FULL_HISTORY

    # F1 peaks early then stalls for a long run; everything else breaks late.
    history = [make_record(e, f1=(0.5 if e == 30 else 0.25) if e % 2 == 0 else None)
               for e in range(1, 3 * FULL_HISTORY)]
    history += broken_history()[: FULL_HISTORY // 2]
    for i, record in enumerate(history, start=1):
        record["epoch"] = i
    full = make_context(history=history)
    expected = [evaluate(RunContext(full.config, history[:n]), set())
                for n in range(1, len(history) + 1)]
    slim = [evaluate(RunContext(full.config, slimmed([dict(r) for r in history[:n]])), set())
            for n in range(1, len(history) + 1)]
    assert slim == expected
    assert any(f.rule == "f1_stalled" for found in expected for f in found)
    kept = slimmed([dict(r) for r in history])
    assert all(len(r) == 2 for r in kept[:-FULL_HISTORY])
