"""A throwaway Ray cluster on this machine: one head node, stopped by killing its own processes.

`ray start --head` with 2 CPUs, a temp dir of its own and every port it would otherwise take
at a fixed default (client server 10001, dashboard 8265, ...) chosen free, so it collides
with no other cluster here. It is stopped by killing its own processes, found by that temp
dir or its port, and their children (the workers): `ray stop` would stop every Ray cluster
of the machine's user, not only this one. Used by tests/ray and bench/sweep.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from utils.backend_server import free_ports
from utils.processes import end_processes

RAY_CPUS = 2
OTHER_PORT_FLAGS = (
    "--ray-client-server-port", "--dashboard-port", "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port",
    "--node-manager-port", "--object-manager-port",
)


class RayHead:
    def __init__(self, num_cpus: int = RAY_CPUS) -> None:
        self.num_cpus = num_cpus
        # Short and outside pytest's tmp: Ray's unix socket paths must fit in 107 bytes.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="cwray-", dir="/tmp"))
        # Every port it would otherwise pick itself, chosen at once so no two are the same
        # (a port just released may be handed out again, and Ray refuses a shared one).
        self.port, *self._other_ports = free_ports(1 + len(OTHER_PORT_FLAGS))
        self.address = f"127.0.0.1:{self.port}"
        self.ray = str(Path(sys.executable).with_name("ray"))
        self.stopped: list[psutil.Process] = []  # what stop() ended, checked afterwards

    def start(self) -> RayHead:
        ports = {"--port": self.port,
                 **dict(zip(OTHER_PORT_FLAGS, self._other_ports, strict=True))}
        argv = [
            self.ray, "start", "--head", "--node-ip-address", "127.0.0.1",
            "--num-cpus", str(self.num_cpus), "--num-gpus", "0", "--temp-dir", str(self.temp_dir),
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
        end_processes(procs, grace=3)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def alive(head: RayHead) -> list[tuple[int, str]]:
    """What is still running of everything the head's `stop` ended."""
    left = []
    for proc in [*head.stopped, *head.processes()]:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append((proc.pid, proc.name()))
        except psutil.NoSuchProcess:
            pass
    return left
