"""Probes, end to end: a real backend queues real probe trainers for an alert's fixes,
judges them against the parent, and the restart applies what was verified."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from utils.backend_server import BackendServer, StartBackend
from websockets.sync.client import connect

from backend.thresholds import PROBE_EPOCHS

# A synthetic run whose every step is clipped: clip_high fires at epoch 11, with fixes.
CLIPPED = {
    "grad_clip_norm": 0.01,
    "epochs": 14,
    "synthetic_samples": 300,
    "batch_size": 64,
    "eval_every": 2,
    "patience": 0,
}


def listen(backend: BackendServer, run_id: str, events: list[dict[str, Any]]) -> None:
    """The run's live stream, until its clip_high alert has a verdict (or 5 minutes)."""
    deadline = time.monotonic() + 300
    with connect(f"{backend.ws_url}/ws/runs/{run_id}", open_timeout=10) as ws:
        while time.monotonic() < deadline:
            try:
                event = json.loads(ws.recv(timeout=5))
            except TimeoutError:
                continue
            events.append(event)
            if event["type"] == "verification" and event["alert"]["rule"] == "clip_high" and (
                event["alert"]["verification"]["status"] != "pending"
            ):
                return


def alert_of(backend: BackendServer, run_id: str, rule: str) -> dict[str, Any]:
    alerts = backend.client.get(f"/api/runs/{run_id}/alerts").json()
    return next(a for a in alerts if a["rule"] == rule)


def wait_verification(backend: BackendServer, run_id: str, rule: str) -> dict[str, Any]:
    def judged(_run: dict[str, Any]) -> bool:
        alerts = backend.client.get(f"/api/runs/{run_id}/alerts").json()
        alert = next((a for a in alerts if a["rule"] == rule), None)
        return bool(alert and (alert["verification"] or {}).get("status") in
                    ("verified", "refuted"))

    backend.wait_for(run_id, judged, timeout=300)
    return alert_of(backend, run_id, rule)


def test_an_alert_is_probed_judged_and_its_verified_fix_applied(
    start_backend: StartBackend,
) -> None:
    backend = start_backend(max_probes=1)
    parent = backend.create("synthetic", **CLIPPED)
    events: list[dict[str, Any]] = []
    listener = threading.Thread(target=listen, args=(backend, parent["id"], events), daemon=True)
    listener.start()
    alert = wait_verification(backend, parent["id"], "clip_high")
    verification = alert["verification"]
    labels = [c["label"] for c in alert["candidates"]]
    assert labels[0] == "rescale_losses"  # the recon term carries the norm
    probes = verification["probes"]
    assert 1 <= len(probes) <= 3
    assert [p["label"] for p in probes] == labels[: len(probes)]

    # Probes are runs of kind probe, linked to the alert, hidden from the default list.
    everything = backend.client.get(f"/api/runs/{parent['id']}/probes").json()["runs"]
    listed = [r for r in everything if r["parent_alert_id"] == alert["id"]]
    assert {r["id"] for r in listed} == {p["run_id"] for p in probes}
    for run in listed:
        assert run["kind"] == "probe" and run["parent_alert_id"] == alert["id"]
        k = max(PROBE_EPOCHS, alert["epoch"])
        assert run["config"]["stop_after_epochs"] == k and run["epochs_total"] == k
        assert run["config"]["epochs"] == CLIPPED["epochs"]  # the parent's schedule
        assert run["config"]["seed"] == parent["config"]["seed"]
    default_ids = {r["id"] for r in backend.client.get("/api/runs").json()["runs"]}
    assert default_ids == {parent["id"]}
    every = backend.client.get("/api/runs", params={"kind": "all"}).json()["runs"]
    assert {r["id"] for r in every} == default_ids | {r["id"] for r in everything}
    assert backend.run(parent["id"])["children"] == []

    # Each verdict is what its evidence says: cleared and not worse ⇔ verified.
    assert alert["metric"] == "clip_pct"  # the rule's metric, the one its probes judge
    for probe in probes:
        assert probe["verdict"] in ("verified", "refuted"), probe
        assert probe["metric"]["name"] == alert["metric"]
        assert probe["metric"]["before"] > 50
        records = backend.metrics(probe["run_id"])
        assert probe["metric"]["after"] == records[-1]["clip_pct"]
        assert probe["epoch"] == records[-1]["epoch"] == max(PROBE_EPOCHS, alert["epoch"])
        assert probe["cleared"] == (probe["metric"]["after"] <= 50)
        assert (probe["verdict"] == "verified") == (probe["cleared"] and not probe["reasons"])
        assert probe["val_recon"]["before"] is not None and probe["f1"]["after"] is not None
    verified = [p for p in probes if p["verdict"] == "verified"]
    assert verification["status"] == ("verified" if verified else "refuted")
    assert all(p["verdict"] != "cancelled" for p in probes)
    assert alert["fix_verified"] == bool(verified)
    if verified:
        assert verification["best"] in {p["label"] for p in verified}
        best = next(p for p in probes if p["label"] == verification["best"])
        assert alert["fix"] == best["changes"]
    else:
        assert alert["fix"] == alert["suggested_changes"]

    # Browsers hear each verdict live, as its own event type (alert ids are deduplicated).
    listener.join(timeout=30)
    judged = [e["alert"]["verification"]["status"] for e in events
              if e["type"] == "verification" and e["alert"]["id"] == alert["id"]]
    assert judged[0] == "pending" and judged[-1] == verification["status"], judged

    # The restart applies the alert's fix, not the probe's epoch cut.
    backend.wait_finished(parent["id"], timeout=300)
    resp = backend.client.post(f"/api/runs/{parent['id']}/restart",
                               json={"alert_id": alert["id"]})
    assert resp.status_code == 201, resp.text
    child = resp.json()
    for key, value in alert["fix"].items():
        assert child["config"][key] == value
    assert child["config"]["stop_after_epochs"] is None
    assert child["kind"] == "run" and child["parent_id"] == parent["id"]

    # The same fix again: that config already ran (is running), named in a 409.
    again = backend.client.post(f"/api/runs/{parent['id']}/restart",
                                json={"alert_id": alert["id"]})
    assert again.status_code == 409, again.text
    detail = again.json()["detail"][0]
    assert detail["existing_run_id"] == child["id"] and child["id"] in detail["msg"]
    forced = backend.client.post(f"/api/runs/{parent['id']}/restart",
                                 json={"alert_id": alert["id"], "allow_repeat": True})
    assert forced.status_code == 201, forced.text
    # A named candidate instead of the fix; an unknown one is refused by name.
    other = next(c for c in alert["candidates"] if c["changes"] != alert["fix"])
    picked = backend.client.post(f"/api/runs/{parent['id']}/restart",
                                 json={"alert_id": alert["id"], "candidate": other["label"]})
    assert picked.status_code == 201, picked.text
    for key, value in other["changes"].items():
        assert picked.json()["config"][key] == value
    bad = backend.client.post(f"/api/runs/{parent['id']}/restart",
                              json={"alert_id": alert["id"], "candidate": "nope"})
    assert bad.status_code == 422 and "nope" in bad.text and labels[0] in bad.text
    for run_id in (child["id"], forced.json()["id"], picked.json()["id"]):
        backend.client.post(f"/api/runs/{run_id}/stop")


def test_stopping_the_parent_cancels_its_probes_and_probes_take_no_user_slot(
    start_backend: StartBackend,
) -> None:
    backend = start_backend(max_probes=1, max_runs=1)
    parent = backend.create("synthetic", **{**CLIPPED, "epochs": 200})
    backend.wait_for(
        parent["id"],
        lambda _r: bool(backend.client.get(f"/api/runs/{parent['id']}/probes").json()["count"]),
        timeout=120,
    )
    probes = backend.client.get(f"/api/runs/{parent['id']}/probes").json()["runs"]
    # With the one user slot taken, a probe still runs: it has a slot of its own.
    first = backend.wait_for(probes[-1]["id"], lambda r: r["status"] != "queued", timeout=60)
    assert first["status"] in ("running", "completed")
    assert backend.run(parent["id"])["status"] == "running"

    assert backend.client.post(f"/api/runs/{parent['id']}/stop").status_code == 200
    backend.wait_finished(parent["id"], timeout=60)
    for probe in probes:
        ended = backend.wait_finished(probe["id"], timeout=60)
        assert ended["status"] in ("stopped", "completed"), ended
    alert_id = probes[-1]["parent_alert_id"]  # the first alert probed

    def probed() -> dict[str, Any]:
        alerts = backend.client.get(f"/api/runs/{parent['id']}/alerts").json()
        return next(a for a in alerts if a["id"] == alert_id)

    backend.wait_for(
        parent["id"], lambda _r: probed()["verification"]["status"] != "pending", timeout=60
    )
    verification = probed()["verification"]
    verdicts = {p["verdict"] for p in verification["probes"]}
    assert "cancelled" in verdicts, verification
    if verdicts == {"cancelled"}:
        assert verification["status"] == "cancelled" and not probed()["fix_verified"]
