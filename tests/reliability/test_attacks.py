"""Attacks on the default `causalwatch up` (loopback, no token), as an outsider tries them:
DNS rebinding, cross-site websockets, CSRF, ingest forgery, and requests that cost too much.

Each test plays the attack against a real backend (idle stand-in trainers, so that runs sit
queued or running without training) and checks it is refused and nothing changed. The last
test plays the cross-site ones from a real headless Chromium page served from another
loopback port. docs/reliability.md has the table of attacks and results.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from utils.app_client import AppBackend
from utils.backend_server import BackendServer, free_port
from utils.records import epoch_record, frame
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, uci_csv_path: Path, idle_trainer_python: Path
) -> Iterator[BackendServer]:
    with BackendServer(
        tmp_path_factory.mktemp("attacks"), uci_csv_path, max_runs=1,
        env={"CAUSALWATCH_PYTHON": str(idle_trainer_python), "CAUSALWATCH_MAX_QUEUED": "20",
             "CAUSALWATCH_ALLOWED_HOSTS": "causalwatch.lan"},
    ) as srv:
        yield srv


def queued_run(server: BackendServer, **overrides: Any) -> dict[str, Any]:
    """A run nobody trains (its slot is taken or its trainer idles): a target to attack."""
    return server.create(
        "synthetic", epochs=10, synthetic_nodes=5, synthetic_edges=5, **overrides
    )


def drain_queue(server: BackendServer) -> None:
    for run in server.client.get("/api/runs", params={"kind": "all"}).json()["runs"]:
        if run["status"] in ("queued", "running"):
            server.client.post(f"/api/runs/{run['id']}/stop")


def close_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as info:
        for _ in range(5):
            ws.recv(timeout=10)
    return info.value.rcvd.code if info.value.rcvd is not None else None


# --- DNS rebinding ---------------------------------------------------------------------------


def test_dns_rebinding_foreign_host_names_are_refused(server: BackendServer) -> None:
    before = server.client.get("/api/runs", params={"kind": "all"}).json()["count"]
    rebound = {"Host": "evil.example"}
    for method, path in [("GET", "/api/runs"), ("GET", "/docs"), ("GET", "/openapi.json"),
                         ("POST", "/api/runs"), ("GET", "/healthz")]:
        resp = server.client.request(method, path, headers=rebound,
                                     json={"preset": "synthetic"})
        assert resp.status_code == 400, (method, path, resp.status_code)
        assert resp.json()["detail"][0]["field"] == "host"
        assert "--allowed-host" in resp.json()["detail"][0]["msg"]
    assert server.client.get("/api/runs", params={"kind": "all"}).json()["count"] == before
    # A websocket to the rebound name: the socket goes to loopback, the Host says evil.
    with socket.create_connection(("127.0.0.1", server.port)) as sock, connect(
        f"ws://evil.example:{server.port}/ws/runs", sock=sock, open_timeout=10
    ) as ws:
        assert close_code(ws) == 4403
    # Loopback names and --allowed-host names are served.
    for host in ("127.0.0.1", f"localhost:{server.port}", f"[::1]:{server.port}",
                 "causalwatch.lan"):
        assert server.client.get("/api/presets", headers={"Host": host}).status_code == 200


# --- cross-site websockets -------------------------------------------------------------------


def test_cross_site_websockets_are_refused(server: BackendServer) -> None:
    run = queued_run(server)
    for path in ("/ws/runs", f"/ws/runs/{run['id']}"):
        with connect(f"{server.ws_url}{path}", origin=EVIL, open_timeout=10) as ws:
            assert close_code(ws) == 4403
        # The dashboard's own origin (and clients that send none) are served.
        dashboard = f"http://127.0.0.1:{8050}"
        with connect(f"{server.ws_url}{path}", origin=dashboard, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
        with connect(f"{server.ws_url}{path}", open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
    # No browser may open the ingest socket, whatever its origin.
    with connect(f"{server.ws_url}/ws/ingest/{run['id']}", origin=f"http://127.0.0.1:{8050}",
                 additional_headers=server.ingest_headers(run["id"]), open_timeout=10) as ws:
        assert close_code(ws) == 4403
    drain_queue(server)


# --- CSRF ------------------------------------------------------------------------------------


def test_cross_site_writes_are_refused(server: BackendServer) -> None:
    run = queued_run(server)
    stop = f"{server.url}/api/runs/{run['id']}/stop"
    attempts = [
        # what a hidden form or a no-cors fetch can send
        {"content": b"x=1", "headers": {"Content-Type": "application/x-www-form-urlencoded",
                                         "Origin": EVIL}},
        {"content": b"{}", "headers": {"Content-Type": "text/plain", "Origin": EVIL}},
        {"headers": {"Origin": "null"}},
        # a browser that hides its Origin still cannot send JSON or the header cross-site
        {"content": b"{}", "headers": {"Content-Type": "text/plain"}},
        {},
        # JSON from a foreign origin (it would need a preflight we never grant)
        {"json": {}, "headers": {"Origin": EVIL}},
    ]
    for attempt in attempts:
        resp = httpx.post(stop, timeout=10, **attempt)
        assert resp.status_code == 403, (attempt, resp.status_code, resp.text)
        assert resp.json()["detail"][0]["field"] in ("origin", "content-type")
    assert server.run(run["id"])["status"] in ("queued", "running")
    # Scripts (no Origin) with JSON or the header, and the dashboard's origin, may write.
    assert httpx.post(stop, json={}, timeout=10).status_code == 200
    assert server.wait_finished(run["id"], timeout=30)["status"] == "stopped"
    other = queued_run(server)
    resp = httpx.post(f"{server.url}/api/runs/{other['id']}/stop", timeout=10,
                      headers={"X-Causalwatch-Client": "curl",
                               "Origin": f"http://localhost:{8050}"})
    assert resp.status_code == 200
    drain_queue(server)


# --- ingest forgery --------------------------------------------------------------------------


def test_ingest_needs_the_runs_own_token_on_loopback_too(server: BackendServer) -> None:
    run = queued_run(server)
    forged = frame(run["id"], 0, "epoch", record=epoch_record(1, run["id"], loss_total=666.0))
    with connect(f"{server.ws_url}/ws/ingest/{run['id']}", open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.send(forged)
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    other = queued_run(server)
    with connect(f"{server.ws_url}/ws/ingest/{run['id']}", open_timeout=10,
                 additional_headers=server.ingest_headers(other["id"])) as ws:
        assert close_code(ws) == 4401
    assert server.metrics(run["id"]) == []
    drain_queue(server)


def test_a_stored_epoch_is_never_replaced(server: BackendServer) -> None:
    run = queued_run(server)
    first = epoch_record(1, run["id"], loss_total=1.0)
    with connect(f"{server.ws_url}/ws/ingest/{run['id']}", open_timeout=10,
                 additional_headers=server.ingest_headers(run["id"])) as ws:
        ws.send(frame(run["id"], 0, "epoch", record=first))
        assert json.loads(ws.recv(timeout=10)) == {"type": "ack", "seq": 0}
        ws.send(frame(run["id"], 1, "epoch", record=first))  # a resend: acked again
        assert json.loads(ws.recv(timeout=10)) == {"type": "ack", "seq": 1}
        ws.send(frame(run["id"], 2, "epoch", record={**first, "loss_total": 666.0}))
        reply = json.loads(ws.recv(timeout=10))
    assert reply["type"] == "error" and reply["detail"].startswith("record.epoch:")
    assert "never replaced" in reply["detail"]
    assert [r["loss_total"] for r in server.metrics(run["id"])] == [1.0]
    assert "refused a different record for stored epoch 1" in server.log_text()
    drain_queue(server)


def test_finished_runs_take_no_more_messages(server: BackendServer) -> None:
    run = queued_run(server)
    headers = server.ingest_headers(run["id"])
    url = f"{server.ws_url}/ws/ingest/{run['id']}"
    with connect(url, open_timeout=10, additional_headers=headers) as ws:
        ws.send(frame(run["id"], 0, "epoch", record=epoch_record(1, run["id"])))
        assert json.loads(ws.recv(timeout=10))["type"] == "ack"
        ws.send(frame(run["id"], 1, "finished", summary={"status": "completed"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "ack"
        ws.send(frame(run["id"], 2, "epoch", record=epoch_record(2, run["id"])))
        late = json.loads(ws.recv(timeout=10))
        ws.send(frame(run["id"], 3, "graph", epoch=2, probabilities=[[0.0] * 5] * 5))
        late_graph = json.loads(ws.recv(timeout=10))
    assert late["type"] == "error" and "has finished" in late["detail"]
    assert late_graph["type"] == "error" and "has finished" in late_graph["detail"]
    assert [r["epoch"] for r in server.metrics(run["id"])] == [1]
    server.client.post(f"/api/runs/{run['id']}/stop")
    server.wait_finished(run["id"], timeout=30)
    with connect(url, open_timeout=10, additional_headers=headers) as ws:
        assert close_code(ws) == 4409


def test_graph_frames_only_at_the_runs_evaluation_epochs(server: BackendServer) -> None:
    run = queued_run(server, eval_every=2)  # 10 epochs: graphs at 2, 4, ..., 10
    variables = [f"x{i}" for i in range(5)]
    square = [[0.0 if i == j else 0.5 for j in range(5)] for i in range(5)]
    with connect(f"{server.ws_url}/ws/ingest/{run['id']}", open_timeout=10,
                 additional_headers=server.ingest_headers(run["id"])) as ws:
        ws.send(frame(run["id"], 0, "started", data={"variables": variables}))
        assert json.loads(ws.recv(timeout=10))["type"] == "ack"
        replies = {}
        for seq, (epoch, matrix) in enumerate(
            [(2, square), (3, square), (12, square), (10**6, square),
             (4, [[0.0] * 6] * 6)], start=1,
        ):
            ws.send(frame(run["id"], seq, "graph", epoch=epoch, probabilities=matrix))
            replies[epoch, len(matrix)] = json.loads(ws.recv(timeout=10))
    assert replies[2, 5]["type"] == "ack"
    for key in ((3, 5), (12, 5), (10**6, 5)):
        assert replies[key]["type"] == "error", key
        assert replies[key]["detail"].startswith("epoch:"), replies[key]
    assert replies[4, 6]["detail"].startswith("probabilities:")
    graph = server.client.get(f"/api/runs/{run['id']}/graph").json()
    assert graph["epoch"] == 2
    drain_queue(server)


# --- what one request may cost -----------------------------------------------------------------


def test_the_queue_bound_holds_under_concurrent_requests(server: BackendServer) -> None:
    drain_queue(server)
    body = {"preset": "synthetic",
            "overrides": {"epochs": 5, "synthetic_nodes": 5, "synthetic_edges": 5}}

    start = threading.Barrier(50)

    def post(_: int) -> int:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            client.get("/healthz")  # connected before the barrier: the POSTs leave together
            start.wait()
            return client.post("/api/runs", json=body).status_code

    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(post, range(50)))
    queued = server.client.get("/api/runs", params={"status": "queued"}).json()["count"]
    assert queued <= 20, queued
    # max_runs=1: one run may have left the queue for the slot while others were posted.
    assert codes.count(201) <= 21 and codes.count(429) >= 29, codes
    drain_queue(server)


def test_memory_hungry_configs_are_refused_at_validation(server: BackendServer) -> None:
    resp = server.client.post("/api/runs", json={"preset": "synthetic", "overrides": {
        "synthetic_samples": 10_000_000, "synthetic_nodes": 200}})
    assert resp.status_code == 422
    detail = resp.json()["detail"][0]
    assert "synthetic_samples × synthetic_nodes" in detail["msg"], detail
    assert "GiB" in detail["msg"]


def test_websocket_connections_are_capped(
    tmp_path: Path, uci_csv_path: Path, idle_trainer_python: Path
) -> None:
    with BackendServer(tmp_path, uci_csv_path, env={
        "CAUSALWATCH_PYTHON": str(idle_trainer_python), "CAUSALWATCH_MAX_WEBSOCKETS": "4",
    }) as srv, contextlib.ExitStack() as sockets:
        open_ones = [sockets.enter_context(connect(f"{srv.ws_url}/ws/runs", open_timeout=10))
                     for _ in range(4)]
        for ws in open_ones:
            assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
        with connect(f"{srv.ws_url}/ws/runs", open_timeout=10) as extra:
            assert close_code(extra) == 1013
        open_ones.pop().close()
        time.sleep(0.5)
        with connect(f"{srv.ws_url}/ws/runs", open_timeout=10) as again:
            assert json.loads(again.recv(timeout=10))["type"] == "snapshot"


def test_runs_past_max_run_seconds_are_stopped_with_the_reason(
    tmp_path: Path, uci_csv_path: Path, idle_trainer_python: Path
) -> None:
    with AppBackend(tmp_path, uci_csv_path, idle_trainer_python, max_run_seconds=2) as srv:
        run = srv.create("synthetic", epochs=5)
        done = srv.wait_finished(run["id"], timeout=30)
        assert done["status"] == "stopped"
        assert done["status_reason"].startswith("ran longer than max_run_seconds (2 s)")


def test_ingest_stops_taking_records_when_the_disk_is_nearly_full(
    tmp_path: Path, uci_csv_path: Path, idle_trainer_python: Path
) -> None:
    with BackendServer(tmp_path, uci_csv_path, env={
        "CAUSALWATCH_PYTHON": str(idle_trainer_python)}) as srv:
        run = srv.create_sdk("synthetic", epochs=5)
        srv.stop()
        srv.env["CAUSALWATCH_MIN_FREE_MB"] = "10000000"  # 10 TB: never free here
        srv.start()
        with connect(f"{srv.ws_url}/ws/ingest/{run['id']}", open_timeout=10,
                     additional_headers=srv.ingest_headers(run["id"])) as ws:
            ws.send(frame(run["id"], 0, "epoch", record=epoch_record(1, run["id"])))
            assert close_code(ws) == 1013  # try again later: the trainer keeps it
        assert srv.metrics(run["id"]) == []


# --- the same attacks from a real browser page --------------------------------------------------

ATTACK_PAGE = """<!doctype html>
<html><body>
<iframe name="sink" style="display:none"></iframe>
<form id="csrf" method="POST" target="sink" action="{api}/api/runs/{run}/stop"
      enctype="text/plain"><input name="x" value="1"></form>
<script>
window.results = {{ws: "pending", fetch: "pending", form: "pending"}};
const ws = new WebSocket("{ws}/ws/runs");
ws.onmessage = function (e) {{ window.results.ws = "read: " + e.data.slice(0, 80); }};
ws.onclose = function (e) {{
  if (window.results.ws === "pending") window.results.ws = "closed " + e.code;
}};
fetch("{api}/api/runs/{run}/stop", {{method: "POST", mode: "no-cors", body: "{{}}",
                                    headers: {{"Content-Type": "text/plain"}}}})
  .then(function () {{ window.results.fetch = "sent"; }})
  .catch(function (e) {{ window.results.fetch = "error " + e; }});
document.getElementById("csrf").submit();
window.results.form = "submitted";
</script>
</body></html>
"""


def test_a_real_cross_site_page_can_neither_read_nor_write(
    server: BackendServer, tmp_path: Path
) -> None:
    from utils.dashboard_browser import CHROMEDRIVER, CHROMIUM, launch_chromium

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("browser tests need Debian's chromium and chromium-driver (make test)")
    run = queued_run(server)
    page = ATTACK_PAGE.format(api=server.url, ws=server.ws_url, run=run["id"]).encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_: Any) -> None:
            pass

    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    # evil.example resolves to loopback, as after a DNS rebinding.
    driver = launch_chromium(
        tmp_path / "profile", ("--host-resolver-rules=MAP evil.example 127.0.0.1",)
    )
    try:
        driver.get(f"http://127.0.0.1:{attacker.server_port}/")
        deadline = time.monotonic() + 15
        results: dict[str, str] = {}
        while time.monotonic() < deadline:
            results = driver.execute_script("return window.results")
            if "pending" not in results.values():
                break
            time.sleep(0.2)
        assert results["ws"] == "closed 4403", results
        assert results["fetch"] in ("sent", "pending") or results["fetch"].startswith("error")
        time.sleep(1.0)  # the form's and the fetch's requests have reached the server
        assert server.run(run["id"])["status"] in ("queued", "running")
        # The rebinding page reads the API under its own name: refused.
        driver.get(f"http://evil.example:{server.port}/api/runs")
        assert "does not answer to host" in driver.page_source
        assert run["id"] not in driver.page_source
    finally:
        driver.quit()
        attacker.shutdown()
        drain_queue(server)
