"""A probe's verdict from its numbers (backend/probes.py), without processes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from backend.probes import REFUTED, VERIFIED, _compare, _val_recon_ratio
from backend.schemas import AlertPublic, RunKind, RunPublic, RunStatus


def run(config: dict[str, Any], kind: RunKind = RunKind.run) -> RunPublic:
    now = datetime.now(UTC)
    return RunPublic(
        id="r", name=None, preset="uci", kind=kind, config=config,
        status=RunStatus.completed, status_reason=None, parent_id=None, parent_alert_id=None,
        created_at=now, started_at=now, finished_at=now, epochs_total=30, last_epoch=30,
        eta_seconds=0.0, progress=1.0, best_epoch=None, f1_at_best=None, shd_at_best=None,
    )


ALERT = AlertPublic(
    id=1, run_id="r", rule="clip_high", severity="warning", epoch=11, message="m", cause="c",
    suggested_changes={}, evidence={}, created_at=datetime.now(UTC),
)


def rec(epoch: int, clip: float, val: float | None, f1: float | None) -> dict[str, Any]:
    return {"epoch": epoch, "clip_pct": clip, "val_recon": val, "f1": f1}


def judge(before: dict[str, Any], after: dict[str, Any], *, cleared: bool = True,
          probe_config: dict[str, Any] | None = None) -> dict[str, Any]:
    parent = run({"standardize": True})
    probe = run(probe_config or {"standardize": True}, RunKind.probe)
    return _compare(ALERT, parent, probe, before, after, [before], [after], cleared=cleared)


def test_cleared_and_not_worse_is_verified_with_the_numbers() -> None:
    verdict = judge(rec(11, 100.0, 1.0, 0.3), rec(11, 0.0, 1.02, 0.28))
    assert verdict["verdict"] == VERIFIED and verdict["reasons"] == []
    assert verdict["metric"] == {"name": "clip_pct", "before": 100.0, "after": 0.0}
    assert verdict["val_recon"]["before"] == 1.0 and verdict["val_recon"]["after"] == 1.02
    assert verdict["f1"] == {"before": 0.3, "after": 0.28}


def test_still_flagged_or_worse_is_refuted_with_the_reason() -> None:
    assert judge(rec(11, 100.0, 1.0, 0.3), rec(11, 90.0, 1.0, 0.3), cleared=False)[
        "reasons"] == ["clip_high fired on the probe too"]
    worse_recon = judge(rec(11, 100.0, 1.0, 0.3), rec(11, 0.0, 1.06, 0.3))
    assert worse_recon["verdict"] == REFUTED and "val_recon worse" in worse_recon["reasons"][0]
    worse_f1 = judge(rec(11, 100.0, 1.0, 0.3), rec(11, 0.0, 1.0, 0.24))
    assert worse_f1["verdict"] == REFUTED and "F1 worse: 0.300 → 0.240" in worse_f1["reasons"]


def test_val_recon_is_not_compared_across_a_change_of_scale() -> None:
    verdict = judge(rec(11, 100.0, 1e5, 0.1), rec(11, 0.0, 0.9, 0.1),
                    probe_config={"standardize": False})
    assert verdict["verdict"] == VERIFIED and verdict["val_recon"]["comparable"] is False
    assert _val_recon_ratio(verdict) == 1.0
    assert _val_recon_ratio(judge(rec(11, 100.0, 2.0, 0.1), rec(11, 0.0, 1.0, 0.1))) == 0.5
