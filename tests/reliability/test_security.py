"""Security as an attacker tries it: tokens on every door, per-run ingest keys, no shell,
bounded requests, non-loopback binds that demand a token."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from utils.backend_server import BackendServer, free_port
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

TOKEN = "s3cret-token-for-the-tests-0123456789"


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path
) -> Iterator[BackendServer]:
    with BackendServer(
        tmp_path_factory.mktemp("secured"), uci_csv_path, token=TOKEN, trainer="stream"
    ) as server:
        yield server


def ingest_token(server: BackendServer, run_id: str) -> str:
    return server.ingest_token(run_id)


def test_every_api_call_needs_the_token(secured: BackendServer) -> None:
    anonymous = httpx.Client(base_url=secured.url, timeout=10)
    for method, path in [("GET", "/api/runs"), ("GET", "/api/presets"), ("POST", "/api/runs"),
                         ("GET", "/openapi.json"), ("GET", "/docs"),
                         ("GET", "/api/runs/x/log"), ("POST", "/api/runs/x/stop")]:
        resp = anonymous.request(method, path, json={"preset": "uci"})
        assert resp.status_code == 401, (method, path, resp.status_code)
        assert resp.json()["detail"][0]["field"] == "token"
        wrong = anonymous.request(method, path, headers={"Authorization": "Bearer nope"},
                                  json={"preset": "uci"})
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

    # A run fed by its own loop (kind sdk): it takes records, and no trainer races the test.
    victim = secured.create_sdk("synthetic", epochs=50)
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
            opened = browser.get("/", params={"token": TOKEN})
            # The token leaves the address bar at once; the cookie holds a session id.
            assert opened.status_code == 303 and "token" not in opened.headers["location"]
            assert TOKEN not in str(browser.cookies.values())
            assert browser.get("/").status_code == 200
            assert browser.get("/_dash-layout").status_code == 200  # the cookie carries it
            assert TOKEN not in browser.get("/").text
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
        while "generated one into" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        # The token is written to a file only its owner reads, never to the terminal.
        token_file = tmp_path / "runs" / ".causalwatch-token"
        assert str(token_file) in line
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 24 and token not in line
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


def test_tokens_stay_out_of_logs_and_trainers(secured: BackendServer) -> None:
    """Tokens in URLs (websockets, links) are redacted from every log line; a trainer's
    environment holds its run's ingest token and not the admin token."""
    run = secured.create("synthetic", epochs=40, synthetic_samples=2000)
    anonymous = httpx.Client(base_url=secured.url, timeout=10)
    assert anonymous.get("/api/runs", params={"token": TOKEN}).status_code == 200
    assert anonymous.get("/api/runs", params={"token": "wrong-" + TOKEN}).status_code == 401
    with connect(f"{secured.ws_url}/ws/runs?token={TOKEN}", open_timeout=10) as ws:
        ws.recv(timeout=10)
    secured.wait_for(run["id"], lambda r: r["status"] == "running", timeout=60)
    trainers = [p for p in psutil.process_iter(["cmdline"])
                if run["id"] in (p.info.get("cmdline") or [])]
    assert trainers, "the run's trainer process"
    environ = trainers[0].environ()
    assert "CAUSALWATCH_INGEST_TOKEN" in environ and "CAUSALWATCH_TOKEN" not in environ
    secured.client.post(f"/api/runs/{run['id']}/stop")
    secured.wait_finished(run["id"])
    log = secured.log_text()
    assert "token=[redacted]" in log  # the access log saw the URLs...
    assert TOKEN not in log  # ...and never the token
    assert "wrong-" not in log


def test_pages_get_short_lived_read_only_tickets(secured: BackendServer) -> None:
    ticket = secured.client.post("/api/tickets", json={}).json()
    assert ticket["ttl_seconds"] > 0 and ticket["token"] and TOKEN not in ticket["token"]
    page = httpx.Client(base_url=secured.url, timeout=10, params={"token": ticket["token"]})
    assert page.get("/api/runs").status_code == 200  # reads
    with connect(f"{secured.ws_url}/ws/runs?token={ticket['token']}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
    # never writes, never more tickets, never ingest
    run = secured.create("synthetic", epochs=2, synthetic_samples=200)
    assert page.post(f"/api/runs/{run['id']}/stop", json={}).status_code == 401
    assert page.post("/api/tickets", json={}).status_code == 401
    with connect(f"{secured.ws_url}/ws/ingest/{run['id']}?token={ticket['token']}",
                 open_timeout=10) as ws, pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    # a forged or expired ticket opens nothing
    prefix, expires, signature = ticket["token"].split(".")
    for forged in (f"{prefix}.{int(expires) + 3600}.{signature}", f"{prefix}.1.{signature}",
                   f"{prefix}.{expires}.{'0' * len(signature)}"):
        assert page.get("/api/runs", params={"token": forged}).status_code == 401
    secured.wait_finished(run["id"])


def test_docs_assets_are_pinned_and_pages_cannot_be_framed(secured: BackendServer) -> None:
    docs = secured.client.get("/docs")
    assert docs.status_code == 200
    assert 'integrity="sha384-' in docs.text and "swagger-ui-dist@5." in docs.text
    assert "swagger-ui-dist@5/" not in docs.text  # a pinned version, not the newest
    assert "script-src 'self' https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    assert "<script>" not in docs.text  # no inline script: the CSP forbids it
    assert secured.client.get("/redoc").status_code == 404
    api = secured.client.get("/api/presets")
    assert api.headers["x-frame-options"] == "DENY"
    assert api.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in api.headers["content-security-policy"]
