"""Security as an attacker tries it: tokens on every door, per-run ingest keys, no shell,
bounded requests, non-loopback binds that demand a token."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from backend_server import BackendServer, free_port
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

TOKEN = "s3cret-token-for-the-tests-0123456789"


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path
) -> Iterator[BackendServer]:
    root = tmp_path_factory.mktemp("secured")
    os.environ["CAUSALWATCH_TOKEN"] = TOKEN
    try:
        server = BackendServer(root, uci_csv_path)
        server.client.headers["Authorization"] = f"Bearer {TOKEN}"
        server.start()
    finally:
        del os.environ["CAUSALWATCH_TOKEN"]
    try:
        yield server
    finally:
        server.close()


def ingest_token(server: BackendServer, run_id: str) -> str:
    with sqlite3.connect(server.db_path) as db:
        (token,) = db.execute("select ingest_token from runs where id = ?", (run_id,)).fetchone()
    return str(token)


def test_every_api_call_needs_the_token(secured: BackendServer) -> None:
    anonymous = httpx.Client(base_url=secured.url, timeout=10)
    for method, path in [("GET", "/api/runs"), ("GET", "/api/presets"), ("POST", "/api/runs"),
                         ("GET", "/openapi.json"), ("GET", "/docs"),
                         ("GET", "/api/runs/x/log"), ("POST", "/api/runs/x/stop")]:
        resp = anonymous.request(method, path, json={"preset": "uci"})
        assert resp.status_code == 401, (method, path, resp.status_code)
        assert resp.json()["detail"][0]["field"] == "token"
        wrong = anonymous.request(method, path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert anonymous.get("/healthz").status_code == 200  # probes stay open
    assert anonymous.get("/api/presets", params={"token": TOKEN}).status_code == 200
    assert secured.client.get("/api/presets").status_code == 200


def test_browser_websockets_need_the_token(secured: BackendServer) -> None:
    run = secured.create("synthetic", epochs=2, synthetic_samples=200)
    for path in (f"/ws/runs/{run['id']}", "/ws/runs"):
        with connect(f"{secured.ws_url}{path}", open_timeout=10) as ws:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401
        with connect(f"{secured.ws_url}{path}?token={TOKEN}", open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
    secured.wait_finished(run["id"])


def test_trainers_use_their_own_key_and_cannot_write_into_another_run(
    secured: BackendServer,
) -> None:
    first = secured.create("synthetic", epochs=3, synthetic_samples=200)
    done = secured.wait_finished(first["id"])
    assert done["status"] == "completed", done["status_reason"]
    assert [r["epoch"] for r in secured.metrics(first["id"])] == [1, 2, 3]  # its key worked

    victim = secured.create("synthetic", epochs=50)
    secured.client.post(f"/api/runs/{victim['id']}/stop")
    record = secured.metrics(first["id"])[0] | {"run_id": victim["id"]}
    frame = json.dumps({"v": 1, "type": "epoch", "run_id": victim["id"], "seq": 0,
                        "record": record})
    stolen = {"Authorization": f"Bearer {ingest_token(secured, first['id'])}"}
    with connect(f"{secured.ws_url}/ws/ingest/{victim['id']}", additional_headers=stolen,
                 open_timeout=10) as ws, pytest.raises(ConnectionClosed) as info:
        ws.send(frame)  # the server may already have closed: either call raises
        ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    assert secured.metrics(victim["id"]) == []
    own = {"Authorization": f"Bearer {ingest_token(secured, victim['id'])}"}
    with connect(f"{secured.ws_url}/ws/ingest/{victim['id']}", additional_headers=own,
                 open_timeout=10) as ws:
        ws.send(frame)
        assert json.loads(ws.recv(timeout=10)) == {"type": "ack", "seq": 0}


def test_tokens_never_leave_through_the_api(secured: BackendServer) -> None:
    run = secured.create("synthetic", epochs=2, synthetic_samples=200)
    secret = ingest_token(secured, run["id"])
    everything = secured.client.get("/api/runs").text + secured.client.get(
        f"/api/runs/{run['id']}").text
    assert secret not in everything and TOKEN not in everything
    secured.wait_finished(run["id"])


def test_the_dashboard_needs_the_token(
    tmp_path: Path, uci_csv_path: Path
) -> None:
    port, api = free_port(), free_port()
    env = {**os.environ, "CAUSALWATCH_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard", "--port", str(port), "--api",
         f"http://127.0.0.1:{api}"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_listening(port)
        anonymous = httpx.get(url + "/", timeout=10)
        assert anonymous.status_code == 401 and "token" in anonymous.text
        assert httpx.get(url + "/_dash-layout", timeout=10).status_code == 401
        with httpx.Client(base_url=url, timeout=10) as browser:
            assert browser.get("/", params={"token": TOKEN}).status_code == 200
            assert browser.get("/_dash-layout").status_code == 200  # the cookie carries it
    finally:
        proc.terminate()
        proc.wait(10)


def test_non_loopback_bind_generates_and_demands_a_token(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "up", "--host", "0.0.0.0", "--port", str(port),
         "--runs-dir", str(tmp_path / "runs"), "--no-dashboard"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={k: v for k, v in os.environ.items() if k != "CAUSALWATCH_TOKEN"},
    )
    try:
        assert proc.stderr is not None
        line = ""
        deadline = time.monotonic() + 30
        while "CAUSALWATCH_TOKEN=" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        token = line.strip().split("CAUSALWATCH_TOKEN=", 1)[1]
        assert len(token) >= 24
        _wait_listening(port)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/api/runs", timeout=10).status_code == 401
        ok = httpx.get(base + "/api/runs", headers={"Authorization": f"Bearer {token}"},
                       timeout=10)
        assert ok.status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)


def test_no_shell_and_no_config_on_the_command_line(secured: BackendServer) -> None:
    marker = Path(f"/tmp/cw-pwned-{os.getpid()}")
    name = f"$(touch {marker}); `touch {marker}` && touch {marker}"
    resp = secured.client.post("/api/runs", json={
        "preset": "synthetic", "name": name,
        "overrides": {"epochs": 2, "synthetic_samples": 200},
    })
    assert resp.status_code == 201
    run = resp.json()
    done = secured.wait_finished(run["id"])
    assert done["status"] == "completed" and done["name"] == name
    assert not marker.exists()
    request = json.loads((secured.runs_dir / run["id"] / "request.json").read_text())
    assert request["epochs"] == 2  # the config travels in a file, not on argv
    bad = secured.client.post("/api/runs", json={
        "preset": "synthetic", "overrides": {"sparsify_method": f"topk; touch {marker}"}})
    assert bad.status_code == 422 and not marker.exists()
    marker.unlink(missing_ok=True)


def test_requests_and_run_counts_are_bounded(secured: BackendServer) -> None:
    huge = secured.client.post(
        "/api/runs", content=b'{"preset": "uci", "name": "' + b"x" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["detail"][0]["field"] == "body"
    long_name = secured.client.post("/api/runs", json={"preset": "uci", "name": "x" * 500})
    assert long_name.status_code == 422
    health = secured.client.get("/healthz")
    assert health.status_code == 200


def _wait_listening(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")
