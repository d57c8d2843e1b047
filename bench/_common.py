"""Pieces the backend benchmarks share: a real `causalwatch up`, runs nobody trains, records.

- `Backend`: `python -m backend.cli up --no-dashboard` on a free loopback port with a fresh
  runs dir (SQLite file), its RSS sampled in a thread (`ProcessSampler`), CPU time, log;
  with `dashboard=True` the dashboard too, on a free port of its own;
  `running_backend` / `drop_temp_dir`: one started in a temp dir, and that dir afterwards;
- `sdk_runs` / `RunPool`: runs of kind sdk made with the `synthetic` preset: no trainer
  process ever runs for them, they are `running` at once, and the bench feeds
  `WS /ws/ingest/{run_id}` itself with each run's ingest token (`ingest_headers`);
  `create_sdk_run`, `stop_run`, `run_status`: the REST calls behind it;
- `RecordMaker`: valid ~1 KB epoch messages built against `trainer.protocol`;
- small helpers: `free_port`, `pct`, `mib`, `stage`, `loadavg`, `cpu_seconds`,
  `add_backend_args`.

Imported as `_common` by the scripts in `bench/` (run as `python bench/<script>.py`, which
puts `bench/` first on `sys.path`; spawned worker processes inherit that path).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from trainer.protocol import PROTOCOL_VERSION, EpochRecord

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "AirQualityUCI.csv"
RUN_EPOCHS = 100_000  # the config's maximum: no stream runs out of epochs
HEALTHY_TIMEOUT = 60.0  # seconds for `causalwatch up` to answer /healthz
DASHBOARD_TIMEOUT = 90.0  # seconds for its dashboard to serve `/` (Dash and Plotly load slowly)
# Sent by every bench HTTP client: state-changing requests without a JSON body need it.
CLIENT_HEADERS = {"X-Causalwatch-Client": "bench"}

# Waiting for and ending processes: one helper for the benches and the tests alike.
sys.path.insert(0, str(ROOT / "tests"))
from utils.processes import end_processes, stop_process, wait_until_answers  # noqa: E402


def free_port() -> int:
    """A loopback port free right now (the OS picks it; a race with other binders is rare)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values, so a report never crashes."""
    if not values:
        return math.nan
    ordered = sorted(values)
    # Rank ceil(q% of n), clamped to 1..n: q = 0 is the minimum, q = 100 the maximum.
    rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def loadavg() -> tuple[float, float, float]:
    """1, 5 and 15 minute load averages: other jobs on a shared machine skew every figure."""
    return os.getloadavg()


def cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    """User + system CPU seconds so far of these processes; one that is gone counts nothing."""
    total = 0.0
    for proc in processes:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Progress on stderr, so stdout carries only the report."""
    t = time.monotonic()
    print(f"{name} ...", file=sys.stderr)
    yield
    print(f"{name}: {time.monotonic() - t:.1f} s", file=sys.stderr)


def add_backend_args(parser: argparse.ArgumentParser, *, out_help: str) -> None:
    """`--data`, `--out`, `--keep`, spelt and defaulted alike in every bench with a `Backend`."""
    parser.add_argument("--data", default=os.environ.get("CAUSALWATCH_DATA")
                        or (str(DEFAULT_DATA) if DEFAULT_DATA.exists() else None))
    parser.add_argument("--out", type=Path, help=out_help)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (backend log)")


# --- the backend ---------------------------------------------------------------------------


class ProcessSampler:
    """RSS of one process every `interval` s in a daemon thread; peak over any time span.

    A thread (not the event loop of the load) so sampling goes on while the clients are busy.
    """

    def __init__(self, process: psutil.Process, interval: float = 0.05) -> None:
        self.process = process
        self.interval = interval
        self.samples: list[tuple[float, int]] = []  # (time.monotonic(), rss bytes)
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()

    def _run(self) -> None:
        while self._running.is_set():
            try:
                self.samples.append((time.monotonic(), self.process.memory_info().rss))
            except psutil.Error:
                return  # the process is gone
            time.sleep(self.interval)

    def peak(self, since: float = 0.0) -> int:
        return max((rss for t, rss in list(self.samples) if t >= since), default=0)


class Backend:
    """`causalwatch up` in a subprocess, with an RSS sampler on its pid.

    API only (`--no-dashboard`) by default: the backend benchmarks measure the backend, and a
    dashboard would also bind the fixed default port 8050, which another job on the machine
    may hold. `dashboard=True` (the dashboard bench) starts it on a free port (`dash_url`)
    instead. `max_runs=None` leaves the trainer slot count at the CLI's default.
    """

    def __init__(
        self, root: Path, data: Path | None, *, max_runs: int | None = 1,
        dashboard: bool = False, max_probes: int = 0,
    ) -> None:
        self.root = root
        self.runs_dir = root / "runs"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.dash_port: int | None = None
        self.dash_url = ""
        self.log_path = root / "backend.log"
        self.argv = [sys.executable, "-m", "backend.cli", "up"]
        if dashboard:
            self.dash_port = free_port()
            while self.dash_port == self.port:  # both were free when asked, one at a time
                self.dash_port = free_port()
            self.dash_url = f"http://127.0.0.1:{self.dash_port}"
            self.argv += ["--port", str(self.port), "--dashboard-port", str(self.dash_port)]
        else:
            self.argv += ["--no-dashboard", "--port", str(self.port)]
        self.argv += ["--runs-dir", str(self.runs_dir)]
        if max_runs is not None:
            self.argv += ["--max-runs", str(max_runs)]
        # Probe trainers only where a bench measures them: they would load every other one.
        self.argv += ["--max-probes", str(max_probes)]
        if data is not None:
            self.argv += ["--data", str(data)]
        self.process: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        self.sampler: ProcessSampler | None = None
        # The header makes its POSTs pass the backend's CSRF rule without a JSON body.
        self.client = httpx.Client(base_url=self.url, timeout=60, headers=CLIENT_HEADERS)

    def start(self) -> Backend:
        # A DATABASE_URL in the caller's environment must not point the bench at a real DB.
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CAUSALWATCH_DB")}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        self.ps = psutil.Process(self.process.pid)
        self._wait_ok(f"{self.url}/healthz", "backend", HEALTHY_TIMEOUT)
        if self.dash_url:
            self._wait_ok(f"{self.dash_url}/", "dashboard", DASHBOARD_TIMEOUT)
        self.sampler = ProcessSampler(self.ps)
        self.sampler.start()
        return self

    def _wait_ok(self, url: str, what: str, timeout: float) -> None:
        """Poll `url` until it answers 200; the process exiting or `timeout` ends the bench."""
        try:
            wait_until_answers(url, self.process, self.log_text, timeout=timeout, what=what)
        except RuntimeError as err:
            raise SystemExit(str(err)) from None

    @property
    def rss_samples(self) -> list[tuple[float, int]]:
        return self.sampler.samples if self.sampler is not None else []

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)

    def peak_rss(self, since: float = 0.0) -> int:
        return self.sampler.peak(since) if self.sampler is not None else 0

    def cpu_seconds(self) -> float:
        assert self.ps is not None
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def idle_cpu(self, seconds: float) -> float:
        """Share of one core the backend takes over `seconds` of no load: every figure's floor."""
        cpu0, t0 = self.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        return (self.cpu_seconds() - cpu0) / (time.monotonic() - t0)

    def dashboard_process(self) -> psutil.Process | None:
        """The dashboard child of `causalwatch up`, if there is one (`dashboard=True`)."""
        if self.dash_port is None or self.ps is None:
            return None
        for child in self.ps.children(recursive=True):
            try:
                if "dashboard" in child.cmdline():
                    return child
            except psutil.Error:
                continue
        return None

    def trainers(self) -> dict[str, psutil.Process]:
        """Trainer processes the backend spawned, by run id."""
        assert self.ps is not None
        found: dict[str, psutil.Process] = {}
        for child in self.ps.children(recursive=True):
            try:
                cmd = child.cmdline()
            except psutil.Error:
                continue
            if "trainer" in cmd and "--run-id" in cmd:
                found[cmd[cmd.index("--run-id") + 1]] = child
        return found

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_levels(self) -> tuple[int, int]:
        """(errors, warnings) in the backend's JSON log."""
        lines = self.log_text().splitlines()
        return (sum(1 for line in lines if '"level": "error"' in line),
                sum(1 for line in lines if '"level": "warning"' in line))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s: the bench never leaves a backend behind.

        Nor a dashboard: it is looked up first, since once the backend is gone it is no longer
        the backend's child, and ended if it outlived the backend.
        """
        if self.sampler is not None:
            self.sampler.stop()
        dash_proc = self.dashboard_process()
        if self.process is not None:
            stop_process(self.process)
        if dash_proc is not None:
            end_processes([dash_proc], grace=10)
        self.client.close()


@contextmanager
def running_backend(prefix: str, data: str | None) -> Iterator[Backend]:
    """A started API-only `Backend` in a fresh temp dir (`prefix`), stopped on the way out,
    also on Ctrl-C or a failed stage; the dir stays for the report (see `drop_temp_dir`)."""
    backend = Backend(Path(tempfile.mkdtemp(prefix=prefix)), Path(data) if data else None)
    try:
        with stage("backend start"):
            backend.start()
        yield backend
    finally:
        backend.stop()


def drop_temp_dir(tmp: Path, keep: bool) -> None:
    """After the report: remove the bench's temp dir, or say where it was kept (`--keep`)."""
    if keep:
        print(f"temp dir kept: {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


# --- runs nobody trains --------------------------------------------------------------------


def ingest_headers(token: str) -> dict[str, str]:
    """Handshake headers of `WS /ws/ingest/{run_id}`: the run's own ingest token."""
    return {"Authorization": f"Bearer {token}"}


@dataclass
class RunPool:
    """Runs of kind sdk (no trainer), handed out phase by phase; each run's ingest token."""

    ids: list[str]
    tokens: dict[str, str] = field(default_factory=dict)  # run id -> ingest token

    def take(self, n: int) -> list[str]:
        if n > len(self.ids):
            raise SystemExit(f"run pool exhausted: wanted {n}, have {len(self.ids)}")
        taken, self.ids = self.ids[:n], self.ids[n:]
        return taken

    def take_tokens(self, n: int) -> dict[str, str]:
        """`take(n)`, each run with its ingest token: run id -> token."""
        return {run_id: self.tokens[run_id] for run_id in self.take(n)}


def create_sdk_run(backend: Backend, name: str, **overrides: Any) -> tuple[str, str]:
    """A run of kind sdk: `running` at once, no trainer; (run id, its ingest token).

    The token is in the creation answer only: whoever feeds the run must keep it.
    """
    resp = backend.client.post(
        "/api/runs",
        json={"preset": "synthetic", "overrides": {"epochs": RUN_EPOCHS, **overrides},
              "name": name, "kind": "sdk"},
    )
    if resp.status_code != 201:
        raise SystemExit(f"POST /api/runs: {resp.status_code} {resp.text[:500]}")
    run = resp.json()
    if run.get("status") != "running" or not run.get("ingest_token"):
        raise SystemExit(f"POST /api/runs (kind sdk): not running or no ingest token: {run}")
    return str(run["id"]), str(run["ingest_token"])


def run_status(backend: Backend, run_id: str) -> str:
    return str(backend.client.get(f"/api/runs/{run_id}").json()["status"])


def stop_run(backend: Backend, run_id: str) -> str:
    """End a run (one of kind sdk is `stopped` at once); its status after."""
    resp = backend.client.post(f"/api/runs/{run_id}/stop")
    if resp.status_code != 200:
        raise SystemExit(f"POST /api/runs/{run_id}/stop: {resp.status_code} {resp.text}")
    return str(resp.json()["status"])


def sdk_runs(backend: Backend, n: int, prefix: str = "bench-ingest") -> RunPool:
    """`n` runs of kind sdk, `{prefix}-0`, `{prefix}-1`, ...: the bench is their trainer."""
    pool = RunPool([])
    for i in range(n):
        run_id, token = create_sdk_run(backend, f"{prefix}-{i}")
        pool.ids.append(run_id)
        pool.tokens[run_id] = token
    return pool


# --- messages ----------------------------------------------------------------------------


class RecordMaker:
    """Valid, healthy-looking epoch records (~1 KB as JSON) of one run.

    No red flag fires on them except `f1_stalled`, once per run (F1 plateaus after epoch 50,
    as most long runs do), so the per-record path is the one a healthy run takes. Evaluated
    (F1, SHD, val_recon, ...) every `eval_every` epochs, as the trainer's `eval_every` does;
    the F1 curve is `f1()`, which a subclass may replace.
    """

    def __init__(self, run_id: str, seed: int, *, eval_every: int = 2) -> None:
        self.run_id = run_id
        self.rng = random.Random(seed)
        self.eval_every = eval_every

    def f1(self, epoch: int) -> float:
        """Rises to 0.7 by epoch 50, then flat."""
        return min(50, epoch) / 100 + 0.2

    def record(self, epoch: int) -> dict[str, Any]:
        r = self.rng.random
        recon = 2.0 / (1.0 + 0.01 * epoch) + 1e-3 * r()
        sparse, acyclic, disen = 1e-3 * r(), 1e-4 * r(), 1e-4 * r()
        total = recon + sparse + acyclic + disen
        evaluated = epoch % self.eval_every == 0
        f1 = self.f1(epoch) if evaluated else None
        return {
            "run_id": self.run_id, "epoch": epoch, "step": epoch * 37, "time": time.time(),
            "lr": 5e-4 * (1.0 - r() * 1e-3),
            "loss_total": total, "loss_recon": recon, "loss_sparse": sparse,
            "loss_acyclic": acyclic, "loss_disen": disen,
            "share_recon": 100 * recon / total, "share_sparse": 100 * sparse / total,
            "share_acyclic": 100 * acyclic / total, "share_disen": 100 * disen / total,
            "clip_pct": 10.0 * r(), "grad_norm_mean": 0.5 * r(), "grad_norm_max": 0.5 + r(),
            "logit_mean": -1.0 + 0.1 * r(), "logit_std": 0.5 + 0.1 * r(),
            "edges_at_05": 12, "threshold_tuned": 0.4 + 0.1 * r(), "edges_tuned": 13,
            "edges_topk": 13,
            "shd": 4 if evaluated else None, "f1": f1,
            "precision": f1, "recall": f1, "f1_skeleton": f1,
            "val_recon": recon * (1 + 0.01 * r()) if evaluated else None,
            "is_best": evaluated and epoch <= 50,
            "epoch_seconds": 0.05 + 0.01 * r(), "eta_seconds": 1000.0 * r(),
            # The trainer sends these too: the payload size the backend sees should match.
            "grad_norm_recon": 0.5 * r(), "grad_norm_sparse": 1e-3 * r(),
            "grad_norm_acyclic": 1e-4 * r(), "grad_norm_disen": 1e-4 * r(),
            "update_ratio": 1e-3 * r(),
        }

    def message(self, seq: int, epoch: int) -> str:
        return json.dumps(
            {"v": PROTOCOL_VERSION, "type": "epoch", "run_id": self.run_id, "seq": seq,
             "record": self.record(epoch)}
        )


def check_record_shape() -> int:
    """The records are valid EpochRecords; their message size in bytes."""
    maker = RecordMaker("0123456789abcdef", 0)
    for epoch in (1, 2, 60):
        EpochRecord.model_validate(maker.record(epoch))
    return len(maker.message(0, 2).encode())
