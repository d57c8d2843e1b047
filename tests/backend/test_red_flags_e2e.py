"""Red flags raised by real trainer runs on UCI, with the configurations of docs/presets.md."""

from __future__ import annotations

from typing import Any

import pytest
from utils.backend_server import BackendServer, StartBackend

# (preset, overrides, rules that must fire). Each configuration is the documented one,
# cut to the epochs that reach the rule's condition; patience 0 so early stopping cannot end
# a run before it.
PATHOLOGIES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("standard", {"epochs": 26, "patience": 0},
     {"raw_variance", "near_deterministic", "clip_high", "f1_stalled"}),
    ("uci", {"epochs": 17, "patience": 0, "adjacency_lr_scale": 1.0}, {"logit_collapse"}),
    ("uci", {"epochs": 10, "patience": 0, "lambda_sparse": 13.0, "sparsify_method": "sigmoid"},
     {"recon_share_low"}),
    ("uci", {"epochs": 3, "acyclicity": "dagma", "lambda_acyclic": 1.0}, {"non_finite"}),
]


@pytest.fixture
def busy_backend(start_backend: StartBackend) -> BackendServer:
    return start_backend(max_runs=4)


def test_documented_configurations_raise_their_red_flags(busy_backend: BackendServer) -> None:
    runs = [(busy_backend.create(p, **o), expected) for p, o, expected in PATHOLOGIES]
    for run, expected in runs:
        done = busy_backend.wait_finished(run["id"], timeout=240)
        alerts = busy_backend.client.get(f"/api/runs/{run['id']}/alerts").json()
        fired = {a["rule"]: a for a in alerts}
        assert expected <= set(fired), (run["config"], sorted(fired), done["status_reason"])
        assert len(alerts) == len(fired), "each rule at most once per run"
        for alert in alerts:
            assert alert["message"] and alert["cause"]
            # The suggested change is a patch the restart endpoint accepts.
            if alert["suggested_changes"]:
                resp = busy_backend.client.post(
                    f"/api/runs/{run['id']}/restart",
                    # Two flags can share a fix (standardize): the second would be a 409.
                    json={"alert_id": alert["id"], "overrides": {"epochs": 1},
                          "allow_repeat": True},
                )
                assert resp.status_code == 201, resp.text
                child = resp.json()
                for key, value in alert["suggested_changes"].items():
                    assert child["config"][key] == value
                busy_backend.client.post(f"/api/runs/{child['id']}/stop")
        if "non_finite" in expected:
            assert done["status"] == "failed"
            assert "non-finite loss_acyclic" in done["status_reason"]
            assert fired["non_finite"]["severity"] == "critical"
        else:
            assert done["status"] == "completed", done["status_reason"]
    clip = next(a for a in busy_backend.client.get(f"/api/runs/{runs[0][0]['id']}/alerts").json()
                if a["rule"] == "clip_high")
    assert clip["epoch"] == 11 and "100" in clip["message"]


@pytest.mark.postgresql
def test_ten_concurrent_runs_store_every_epoch_once(start_backend: StartBackend) -> None:
    # The stream, not the model, is the point: stand-in trainers, which pace their epochs
    # closer together than real ones do.
    server = start_backend(max_runs=10, trainer="stream")
    ids = [server.create("synthetic", epochs=5, synthetic_samples=200, seed=i)["id"]
           for i in range(10)]
    for run_id in ids:
        done = server.wait_finished(run_id, timeout=240)
        assert done["status"] == "completed", done["status_reason"]
        assert [r["epoch"] for r in server.metrics(run_id)] == [1, 2, 3, 4, 5]
    assert server.client.get("/api/runs").json()["count"] == 10
    (dupes,) = server.query(
        "select count(*) from (select run_id, epoch from metrics group by run_id, epoch "
        "having count(*) > 1) as d"
    )[0]
    assert dupes == 0


def test_graceful_shutdown_stops_trainers_and_keeps_what_was_stored(
    start_backend: StartBackend,
) -> None:
    server = start_backend(trainer="stream")
    run = server.create("synthetic", epochs=500, synthetic_samples=2000, patience=0)
    server.wait_for(run["id"], lambda r: (r["last_epoch"] or 0) >= 2)
    stored_before = len(server.metrics(run["id"]))
    server.stop()  # SIGTERM: the lifespan stops trainers, then flushes and closes
    # uvicorn re-raises the signal after its graceful shutdown, hence -SIGTERM.
    assert server.process is not None and server.process.returncode in (0, -15)
    assert "Application shutdown complete" in server.log_text()
    server.start()
    after = server.run(run["id"])
    assert after["status"] == "stopped", after
    assert "backend shut down" in after["status_reason"]
    assert len(server.metrics(run["id"])) >= stored_before
