"""Probes: every fix an alert offers is tried in a short run before the user clicks it.

When a warning or critical alert with candidate fixes is stored for a user's run, up to
PROBES_PER_ALERT runs of kind `probe` are queued, one per distinct candidate: the parent's
config with the candidate's patch and `stop_after_epochs` K = max(PROBE_EPOCHS, the epoch
the alert fired at), so the LR and acyclicity schedules are the parent's and the rule can
judge the probe where it judged the parent. A probe starts from scratch with the parent's
seed (resuming from the parent's checkpoint is not done: see docs/rules.md).

A finished probe is judged against its parent at the same epoch (AutoTrainer's
detect → repair → re-check):
- cleared: the alert's rule did not fire on the probe;
- the flagged metric, val_recon and F1, before (parent) → after (probe), on the last epoch
  of the probe and the parent's record at that epoch (val_recon and F1 at the latest
  evaluation at or before it);
- worse: val_recon above the parent's by more than VERIFY_VAL_RECON_TOLERANCE (not compared
  when the patch changes `standardize`: a different scale), or F1 below by more than
  VERIFY_F1_TOLERANCE;
- verified = cleared and not worse; otherwise refuted, with the reasons.
The alert's `verification` is `pending` until a probe is verified (then `verified`, and
`best` names the verified probe with the lowest val_recon ratio) or all are judged
(`refuted`; `cancelled` when every probe was stopped before it ended). The run page's
button applies the best verified patch (AlertPublic.fix).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from backend import rules
from backend.schemas import AlertPublic, RunKind, RunPublic, RunStatus
from backend.settings import Settings
from backend.store import Store
from backend.thresholds import (
    PROBE_EPOCHS,
    PROBES_PER_ALERT,
    VERIFY_F1_TOLERANCE,
    VERIFY_VAL_RECON_TOLERANCE,
)
from trainer.config import ConfigError, build_config

logger = logging.getLogger("causalwatch.probes")

PROBED_SEVERITIES = (rules.Severity.WARNING.value, rules.Severity.CRITICAL.value)
PENDING, VERIFIED, REFUTED = "pending", "verified", "refuted"
# A probe stopped by the user or with its parent proves nothing either way.
CANCELLED = "cancelled"
CHECK_INTERVAL = 1.0  # seconds between two passes judging the pending alerts


def probe_epochs(parent: RunPublic, alert: AlertPublic) -> int:
    """K: long enough for the rule to judge the probe where it judged the parent."""
    planned = int(parent.config.get("epochs") or PROBE_EPOCHS)
    return min(planned, max(PROBE_EPOCHS, alert.epoch or 0))


def probe_id(parent_id: str, index: int) -> str:
    # Bounded by the run id column (80): the parent's id (≤ 60 from the API) + a suffix.
    return f"{parent_id[:60]}-probe{index}-{secrets.token_hex(2)}"


class Prober:
    """Queues probes for new alerts and judges them once they end (thread-safe)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        on_run: Callable[[RunPublic], None],
        on_alert: Callable[[AlertPublic], None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.on_run = on_run  # a probe was queued: publish it, wake the supervisor
        self.on_alert = on_alert  # an alert's verification changed: publish it
        self._lock = threading.Lock()
        self._pending: set[int] | None = None  # alert ids; loaded lazily from the store
        self._checked_at = -CHECK_INTERVAL

    # --- queueing ----------------------------------------------------------------------------

    def on_new_alert(self, run: RunPublic, alert: AlertPublic) -> None:
        """Queue the probes of a fresh alert (called off the event loop)."""
        if not self.settings.probes or self.settings.max_probes == 0:
            return
        if run.kind is not RunKind.run or alert.severity not in PROBED_SEVERITIES:
            return
        if not alert.candidates:
            return
        parent = self.store.get_run(run.id) or run
        if parent.status.finished and parent.status is not RunStatus.completed:
            return  # stopped or failed: nobody will restart from an alert nobody reads
        k = probe_epochs(parent, alert)
        probes: list[dict[str, Any]] = []
        seen: list[dict[str, Any]] = []
        for candidate in alert.candidates:
            if len(probes) >= PROBES_PER_ALERT:
                break
            config = {**parent.config, **candidate["changes"], "stop_after_epochs": k}
            try:
                validated = build_config(parent.preset, config).model_dump()
            except ConfigError as err:
                logger.warning("alert %s: candidate %s invalid: %s", alert.id,
                               candidate["label"], err)
                continue
            if validated in seen:
                continue
            seen.append(validated)
            probe = self.store.create_run(
                run_id=probe_id(parent.id, len(probes) + 1),
                preset=parent.preset,
                config=validated,
                name=f"probe of {alert.rule}: {candidate['label']}",
                parent_id=parent.id,
                parent_alert_id=alert.id,
                ingest_token=secrets.token_urlsafe(24),
                kind=RunKind.probe,
            )
            probes.append({
                "run_id": probe.id,
                "label": candidate["label"],
                "changes": candidate["changes"],
                "expected": candidate.get("expected", ""),
                "epochs": k,
                "verdict": PENDING,
            })
            self.on_run(probe)
        if not probes:
            return
        updated = self.store.set_verification(
            alert.id, {"status": PENDING, "best": None, "probes": probes}
        )
        with self._lock:
            self._pending_ids().add(alert.id)
        if updated is not None:
            self.on_alert(updated)

    def cancel_for(self, parent_id: str) -> list[str]:
        """The ids of the parent's probes still queued or running (the caller stops them)."""
        return [
            p.id
            for p in self.store.list_runs(kinds=(RunKind.probe,), parent_id=parent_id, limit=5000)
            if not p.status.finished
        ]

    # --- judging -----------------------------------------------------------------------------

    def _pending_ids(self) -> set[int]:
        if self._pending is None:
            self._pending = {
                a.id for a in self.store.alerts_with_verification()
                if (a.verification or {}).get("status") == PENDING
            }
        return self._pending

    def check(self) -> None:
        """Judge what can be judged now (called from the supervisor's loop, every tick).

        At most every CHECK_INTERVAL seconds: a verdict waits on trainers that run for
        seconds, and each pass reads the pending alerts and their probes from the store.
        """
        now = time.monotonic()
        if now - self._checked_at < CHECK_INTERVAL:
            return
        self._checked_at = now
        with self._lock:
            pending = sorted(self._pending_ids())
        for alert_id in pending:
            alert = self.store.get_alert(alert_id)
            if alert is None or alert.verification is None:
                with self._lock:
                    self._pending_ids().discard(alert_id)
                continue
            verification = self._judge_alert(alert)
            if verification != alert.verification:
                updated = self.store.set_verification(alert_id, verification)
                if updated is not None:
                    self.on_alert(updated)
            if verification["status"] != PENDING:
                with self._lock:
                    self._pending_ids().discard(alert_id)

    def _judge_alert(self, alert: AlertPublic) -> dict[str, Any]:
        assert alert.verification is not None
        parent = self.store.get_run(alert.run_id)
        probes = [dict(p) for p in alert.verification.get("probes", [])]
        for probe in probes:
            if probe["verdict"] == PENDING and parent is not None:
                probe.update(self._judge_probe(alert, parent, probe))
        verdicts = [p["verdict"] for p in probes]
        verified = [p for p in probes if p["verdict"] == VERIFIED]
        best = min(verified, key=_val_recon_ratio)["label"] if verified else None
        if verified:
            status = VERIFIED
        elif PENDING in verdicts:
            status = PENDING
        elif REFUTED in verdicts:
            status = REFUTED
        else:
            status = CANCELLED  # nothing was tried to the end
        return {"status": status, "best": best, "probes": probes}

    def _judge_probe(
        self, alert: AlertPublic, parent: RunPublic, probe: dict[str, Any]
    ) -> dict[str, Any]:
        run = self.store.get_run(probe["run_id"])
        if run is None:
            return {"verdict": CANCELLED, "reasons": ["the probe run is gone"]}
        if not run.status.finished:
            return {}
        if run.status is RunStatus.stopped:
            return {"verdict": CANCELLED, "reasons": [f"stopped: {run.status_reason}"]}
        history = self.store.get_metrics(run.id)
        if run.status is RunStatus.failed or not history:
            reason = (run.status_reason or "failed").splitlines()[0]
            return {"verdict": REFUTED, "reasons": [f"the probe failed: {reason}"]}
        after = history[-1]
        parent_history = self.store.get_metrics(parent.id, since_epoch=0)
        upto = [r for r in parent_history if r["epoch"] <= after["epoch"]]
        if not upto or (upto[-1]["epoch"] < after["epoch"] and not parent.status.finished):
            return {}  # the parent has not reached the probe's epoch yet
        before = upto[-1]
        return _compare(alert, parent, run, before, after, upto, history,
                        cleared=alert.rule not in self.store.fired_rules(run.id))


def _latest_eval(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in reversed(history) if r.get("val_recon") is not None), None)


def _pair(before: dict[str, Any] | None, after: dict[str, Any] | None, key: str) -> dict[str, Any]:
    return {
        "before": None if before is None else before.get(key),
        "after": None if after is None else after.get(key),
    }


def _compare(  # noqa: PLR0917 - the two runs and their records, side by side
    alert: AlertPublic,
    parent: RunPublic,
    probe: RunPublic,
    before: dict[str, Any],
    after: dict[str, Any],
    parent_upto: list[dict[str, Any]],
    probe_history: list[dict[str, Any]],
    *,
    cleared: bool,
) -> dict[str, Any]:
    rule = rules.RULES_BY_NAME.get(alert.rule)
    metric = rule.metric if rule else None
    evidence: dict[str, Any] = {"epoch": after["epoch"], "parent_epoch": before["epoch"]}
    if metric is not None:
        evidence["metric"] = {
            "name": metric,
            "before": rules.metric_value(metric, before),
            "after": rules.metric_value(metric, after),
        }
    eval_before, eval_after = _latest_eval(parent_upto), _latest_eval(probe_history)
    val = _pair(eval_before, eval_after, "val_recon")
    f1 = _pair(eval_before, eval_after, "f1")
    same_scale = parent.config.get("standardize") == probe.config.get("standardize")
    val["comparable"] = same_scale
    evidence["val_recon"], evidence["f1"] = val, f1
    reasons: list[str] = []
    if not cleared:
        reasons.append(f"{alert.rule} fired on the probe too")
    if same_scale and None not in (val["before"], val["after"]) and (
        val["after"] > val["before"] * (1 + VERIFY_VAL_RECON_TOLERANCE)
    ):
        reasons.append(f"val_recon worse: {val['before']:.4g} → {val['after']:.4g}")
    if None not in (f1["before"], f1["after"]) and f1["after"] < f1["before"] - VERIFY_F1_TOLERANCE:
        reasons.append(f"F1 worse: {f1['before']:.3f} → {f1['after']:.3f}")
    return {
        "verdict": REFUTED if reasons else VERIFIED,
        "cleared": cleared,
        "reasons": reasons,
        **evidence,
    }


def _val_recon_ratio(probe: dict[str, Any]) -> float:
    val = probe.get("val_recon") or {}
    if val.get("comparable") and val.get("before") and val.get("after") is not None:
        return float(val["after"]) / float(val["before"])
    return 1.0
