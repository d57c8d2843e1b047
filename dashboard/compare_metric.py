"""The metric Compare opens on: after a restart with a fix, the one its red flag was about.

A user who clicked "Restart with this fix" for clip% wants to see clip% fall, not F1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dashboard.client import BackendError
from dashboard.figures import COMPARE_METRICS

DEFAULT_METRIC = "f1"  # the headline score, when no restart says which metric it fixed


def opening_metric(
    runs: Sequence[Mapping[str, Any]], alerts_of: Callable[[str], list[dict[str, Any]]]
) -> str:
    """The metric the comparison opens on: after a restart with a fix, the one its red flag
    was about (the newest such run decides); otherwise F1."""
    for run in reversed(runs):
        parent, alert_id = run.get("parent_id"), run.get("parent_alert_id")
        if not (parent and alert_id):
            continue
        try:
            alerts = alerts_of(parent)
        except BackendError:
            continue
        alert = next((a for a in alerts if a.get("id") == alert_id), None)
        metric = alert_metric(alert) if alert else None
        if metric in COMPARE_METRICS:
            return str(metric)
    return DEFAULT_METRIC


def alert_metric(alert: Mapping[str, Any]) -> str | None:
    """The record field an alert's rule is about, as the API tells it (`metric`)."""
    metric = alert.get("metric")
    return metric if isinstance(metric, str) else None
