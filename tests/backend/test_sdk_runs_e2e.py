"""Runs of kind sdk on a real backend: the caller's own config, partial records with the
loop's own keys, graphs when the loop evaluates, rules that fire on what was logged and
stay silent on what was not, and no restart of a loop that is not ours."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from utils.backend_server import BackendServer
from websockets.sync.client import ClientConnection, connect

from backend.db import default_sqlite_url
from backend.ingest import Ingest, MessageError
from backend.schemas import RunKind
from backend.store import Store


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path) -> Iterator[BackendServer]:
    with BackendServer(tmp_path_factory.mktemp("sdk"), uci_csv_path) as srv:
        yield srv


def own_run(server: BackendServer, **body: Any) -> dict[str, Any]:
    resp = server.client.post("/api/runs", json={"kind": "sdk", **body})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


class Feed:
    """One ingest connection, as the SDK's emitter holds it: send a message, read its answer."""

    def __init__(self, ws: ClientConnection, run_id: str) -> None:
        self.ws, self.run_id, self.seq = ws, run_id, 0

    def send(self, msg_type: str, **payload: Any) -> dict[str, Any]:
        self.ws.send(json.dumps(
            {"v": 1, "type": msg_type, "run_id": self.run_id, "seq": self.seq, **payload}
        ))
        self.seq += 1
        return dict(json.loads(self.ws.recv(timeout=10)))

    def record(self, epoch: int, **fields: Any) -> dict[str, Any]:
        return self.send("epoch", record={"run_id": self.run_id, "epoch": epoch, **fields})


def feed(server: BackendServer, run: dict[str, Any]) -> connect:
    return connect(
        f"{server.ws_url}/ws/ingest/{run['id']}", open_timeout=10,
        additional_headers={"Authorization": f"Bearer {run['ingest_token']}"},
    )


def test_an_own_config_run_stores_what_the_loop_logged(server: BackendServer) -> None:
    config = {"hidden": 64, "lambda_sparse": 0.02, "notes": "my own loop"}
    run = own_run(server, name="my model", config=config, epochs=30)
    assert (run["status"], run["preset"], run["config"], run["epochs_total"]) == (
        "running", "sdk", config, 30,
    )
    variables = ["a", "b", "c"]
    graph = [[0.0, 0.9, 0.1], [0.2, 0.0, 0.7], [0.1, 0.1, 0.0]]
    with feed(server, run) as ws:
        f = Feed(ws, run["id"])
        assert f.send("started", data={
            "name": "mine", "variables": variables, "reference_kind": "user",
            "reference_edges": [["a", "b"], ["b", "c"]],
        })["type"] == "ack"
        own = {"accuracy": 0.25, "val/nll": 1.5}
        assert f.record(1, loss_recon=0.5, custom=own)["type"] == "ack"
        assert f.record(2, clip_pct=12.5)["type"] == "ack"
        # Evaluation when the loop chooses: epoch 2 is no plan of ours.
        assert f.send("graph", epoch=2, probabilities=graph)["type"] == "ack"
        beyond = f.record(31, loss_recon=0.1)
        assert beyond["type"] == "error" and beyond["detail"].startswith("record.epoch"), beyond
        for bad, field in (
            ({"custom": {"has space": 1.0}}, "record.custom"),
            ({"clip_pct": 150}, "record.clip_pct"),
            ({"my_key": 1.0}, "record.my_key"),
        ):
            reply = f.record(3, **bad)
            assert reply["type"] == "error" and reply["detail"].startswith(field), reply
        assert f.send("finished", summary={})["type"] == "ack"
    records = server.client.get(f"/api/runs/{run['id']}/metrics").json()
    assert [r["epoch"] for r in records] == [1, 2]
    assert (records[0]["loss_recon"], records[0]["clip_pct"], records[0]["custom"]) == (
        0.5, None, {"accuracy": 0.25, "val/nll": 1.5},
    )
    assert (records[1]["clip_pct"], records[1]["custom"]) == (12.5, None)
    csv_text = server.client.get(
        f"/api/runs/{run['id']}/metrics", params={"format": "csv"}
    ).text
    header, first, second = csv_text.splitlines()
    assert header.endswith("custom.accuracy,custom.val/nll"), header
    assert first.endswith(",0.25,1.5") and second.endswith(",,"), csv_text
    stored = server.client.get(f"/api/runs/{run['id']}/graph").json()
    assert (stored["epoch"], stored["probabilities"], stored["variables"]) == (2, graph, variables)
    assert server.run(run["id"])["status"] == "completed"


def test_rules_fire_on_logged_fields_and_stay_silent_on_absent_ones(
    server: BackendServer,
) -> None:
    run = own_run(server, config={"lambda_sparse": 0.001})
    assert run["epochs_total"] == 0  # length unknown: no bound, no progress
    silent_shares = {"share_recon": 100.0, "share_sparse": 0.0, "share_acyclic": 0.0,
                     "share_disen": 0.0}
    losses = {"loss_recon": 1.0, "loss_sparse": 1e-9, "loss_acyclic": 0.0, "loss_disen": 0.0}
    with feed(server, run) as ws:
        f = Feed(ws, run["id"])
        for epoch in range(1, 31):
            # Nothing about clipping or logits is logged: those rules cannot judge.
            assert f.record(epoch, **silent_shares, **losses)["type"] == "ack"
        assert f.send("finished", summary={})["type"] == "ack"
    alerts = server.client.get(f"/api/runs/{run['id']}/alerts").json()
    assert [a["rule"] for a in alerts] == ["regularizers_silent"], alerts
    fix = alerts[0]["fix"]
    # The loop's own λ (0.001) is the base of the fix, not our default.
    assert fix["lambda_sparse"] > 0.001, fix
    assert "rules could not read" not in server.log_text()
    assert "rule " not in server.log_text()


def test_an_sdk_run_is_not_restarted_by_the_backend(server: BackendServer) -> None:
    run = own_run(server, config={})
    assert run["restartable"] is False
    assert server.create_sdk("synthetic", epochs=5)["restartable"] is True  # a config of ours
    resp = server.client.post(f"/api/runs/{run['id']}/restart", json={})
    assert resp.status_code == 409 and "your own training loop" in resp.text
    server.client.post(f"/api/runs/{run['id']}/stop")


def test_our_trainers_records_stay_complete(tmp_path: Path) -> None:
    """Only the caller's own loop may leave fields out; a trainer of ours measures them all."""
    store = Store.from_url(default_sqlite_url(tmp_path))
    ours = store.create_run(run_id="r", preset="synthetic", config={"epochs": 5})
    partial = {"run_id": "r", "epoch": 1, "loss_recon": 0.5}
    with pytest.raises(MessageError, match=r"^record\."):
        Ingest._validate_record(ours, partial)
    sdk = store.create_run(
        run_id="s", preset="sdk", config={}, kind=RunKind.sdk, epochs_total=0
    )
    stored = Ingest._validate_record(sdk, {**partial, "run_id": "s", "epoch": 10**6})
    assert (stored["loss_recon"], stored["clip_pct"], stored["epoch"]) == (0.5, None, 10**6)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "run", "config": {"a": 1}}, "config"),
        ({"kind": "run", "epochs": 5}, "epochs"),
        ({"kind": "sdk", "config": {}, "preset": "uci"}, "config"),
        ({"kind": "sdk", "epochs": -1}, "epochs"),
    ],
)
def test_create_refuses_mixed_fields(
    server: BackendServer, body: dict[str, Any], field: str
) -> None:
    resp = server.client.post("/api/runs", json=body)
    assert resp.status_code == 422, resp.text
    assert field in resp.text
