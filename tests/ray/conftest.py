"""A real Ray cluster for the Ray executor's tests: one head node on this machine.

`ray start --head` with 2 CPUs, a temp dir of its own and every port it would otherwise take
at a fixed default (client server 10001, dashboard 8265, ...) chosen free, so it collides
with no other cluster here. It is stopped by killing its own processes, found by that temp
dir, and their children (the workers): `ray stop` would stop every Ray cluster of the
machine's user, not only this one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

# backend_server.py lives beside the backend tests (tests/backend has no __init__.py).
BACKEND_TESTS = str(Path(__file__).resolve().parents[1] / "backend")
if BACKEND_TESTS not in sys.path:
    sys.path.insert(0, BACKEND_TESTS)

from backend_server import free_port  # noqa: E402

RAY_CPUS = 2


class RayHead:
    def __init__(self) -> None:
        # Short and outside pytest's tmp: Ray's unix socket paths must fit in 107 bytes.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="cwray-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ray = str(Path(sys.executable).with_name("ray"))
        self.stopped: list[psutil.Process] = []  # what stop() ended, checked afterwards

    def start(self) -> RayHead:
        ports = {
            "--port": self.port, "--ray-client-server-port": free_port(),
            "--dashboard-port": free_port(), "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(), "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(), "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
        }
        argv = [
            self.ray, "start", "--head", "--node-ip-address", "127.0.0.1",
            "--num-cpus", str(RAY_CPUS), "--num-gpus", "0", "--temp-dir", str(self.temp_dir),
            "--include-dashboard=false", "--disable-usage-stats",
            "--object-store-memory", str(100 * 2**20),
            *[str(part) for flag, port in ports.items() for part in (flag, port)],
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env,
                              stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return self

    def processes(self) -> list[psutil.Process]:
        """This cluster's processes: those naming its temp dir or its head's port (the
        client server names only the latter), and all their descendants."""
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info.get("cmdline") or []
            if any(str(self.temp_dir) in part for part in cmd) or (
                any("ray" in part for part in cmd)
                and any(part.endswith(f":{self.port}") for part in cmd)
            ):
                found[proc.pid] = proc
                try:
                    found.update({child.pid: child for child in proc.children(recursive=True)})
                except psutil.NoSuchProcess:
                    pass
        return list(found.values())

    def stop(self) -> None:
        procs = self.processes()
        self.stopped += procs
        for proc in procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=3)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    if shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("ray is not installed in this environment: `make test` installs the "
                    "project's ray extra (pip install -e '.[dev,lightning,ray]')")
    head = RayHead().start()
    try:
        yield head
    finally:
        head.stop()
    deadline = time.monotonic() + 10
    while _alive(head) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(head), f"Ray processes left behind: {_alive(head)}"


def _alive(head: RayHead) -> list[tuple[int, str]]:
    left = []
    for proc in [*head.stopped, *head.processes()]:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append((proc.pid, proc.name()))
        except psutil.NoSuchProcess:
            pass
    return left
