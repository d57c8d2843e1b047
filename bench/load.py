"""Bounded load test: many trainer streams and browser websockets against one backend.

Starts `causalwatch up --no-dashboard` on a free loopback port with a fresh runs dir
(SQLite), creates `--streams` runs of kind sdk with the `synthetic` preset, so no trainer
process runs and the CPU is left to the backend and the load clients. Then, for
`--duration` seconds, all at once:

- `--streams` trainer-like clients, one per run, each sending valid ~1 KB epoch messages
  (built with `trainer.protocol`) on `WS /ws/ingest/{run_id}` (with the run's ingest token)
  at a steady `--rate` records/s, staggered so the streams do not tick in lockstep. Like
  `trainer.emitter`, a client keeps every unacked message, lets at most `--window` be in
  flight, and after a lost connection reconnects (backoff) and resends everything unacked
  (the backend stores idempotently);
- `--browsers` browser-like clients: most subscribe to one run each on
  `WS /ws/runs/{run_id}` (what the dashboard's run page does; spread evenly over the runs),
  `--all-runs-browsers` of them to every run's events on `WS /ws/runs`. A browser that is
  disconnected reconnects, like the dashboard's `live.js`.

The clients run as asyncio tasks in `--client-procs` worker processes (spawned), whose CPU
and event-loop lag are reported: on a 2-core machine the clients share the CPUs with the
backend, and a saturated client would show up as loop lag and late sends, not as a slow
backend.

Measured:
- records sent / acked / stored, and records/s acked (offered: streams × rate);
- send → ack and ingest → browser latency (p50 / p95 / p99 / max): from just before a
  record is handed to the socket to the `metric` event of that epoch arriving at each
  subscribed browser. Senders and browsers live in different processes; timestamps are
  `time.monotonic()`, which is CLOCK_MONOTONIC on Linux, one clock for the whole machine
  (checked at start), so they compare across processes;
- errors: error frames, malformed or out-of-order acks, ingest and browser disconnects,
  failed connects, records never answered, duplicate or missing `metric` events at the
  browsers (every acked record must reach every browser subscribed to its run), worker
  crashes, error lines in the backend log;
- backend RSS (idle, peak during the load, after) and CPU (mean, busiest 5 s), CPU of the
  load clients, machine load average before / after;
- exactly once: every acked (run, epoch) is stored exactly once, and nothing stored that
  was not sent (GET /api/runs/{id}/metrics for every run).

Prints a table (markdown) and the figures as JSON on stdout (progress on stderr); `--out`
also writes the JSON to a file. Exit status 1 if exactly-once fails or any error occurred.

    .venv/bin/python bench/load.py [--streams 50] [--browsers 20] [--all-runs-browsers 4]
        [--duration 60] [--rate 20] [--window 64] [--client-procs 2] [--quick]
        [--data PATH] [--out FILE.json] [--keep]

`--rate 20` (default): the `uci` preset takes 0.164 s per epoch on this CPU
(docs/benchmarks.md, ~6 records/s) and the `synthetic` preset's small model about 0.05 s,
so 20 records/s per stream is the fast end of a real trainer; 50 streams offer 1,000
records/s, about a third of what `bench/backend_ingest.py` measured the backend to ingest
with nothing else to do (2,700 records/s one message at a time), leaving room for the
fan-out to 20 browsers. `--quick`: 10 streams, 4 browsers, 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import queue
import random
import resource
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil
from _common import (
    Backend,
    RecordMaker,
    add_backend_args,
    check_record_shape,
    cpu_seconds,
    drop_temp_dir,
    ingest_headers,
    loadavg,
    mib,
    pct,
    running_backend,
    sdk_runs,
    stage,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from backend.json_safe import json_safe

CONNECT_TIMEOUT = 15.0  # seconds for one websocket handshake
START_TIMEOUT = 120.0  # seconds for every worker to have all its sockets open
DRAIN_TIMEOUT = 30.0  # after the duration: seconds a stream waits for its last acks
QUIET_AFTER = 1.0  # browsers close once no metric event came for this long after the drain
LINGER_MAX = 15.0  # ... or at the latest this long after the drain
RESULT_TIMEOUT = 60.0  # seconds for the workers to hand in their results
MAX_DETAILS = 5  # per client: the first problems name the cause; more add nothing
LATE_AFTER = 0.1  # a record handed over this much after its due time counts as late
SLICE_SECONDS = 10.0  # latency is also reported per slice of send time (growth = backlog)


def mono() -> float:
    """One clock for all processes of the machine: CLOCK_MONOTONIC (see `check_clock`)."""
    return time.monotonic()


def check_clock() -> None:
    impl = time.get_clock_info("monotonic").implementation
    if "CLOCK_MONOTONIC" not in impl:  # e.g. not Linux: cross-process latency would be wrong
        raise SystemExit(f"time.monotonic() is {impl}, not CLOCK_MONOTONIC: cannot compare "
                         "timestamps across the load worker processes")


# --- what a worker does --------------------------------------------------------------------


@dataclass
class WorkerSpec:
    """Plain data (picklable for `spawn`): which runs this worker feeds, which browsers it hosts."""

    index: int
    ws_url: str
    run_ids: list[str]  # every run; a run is named by its index in this list
    tokens: list[str]  # each run's ingest token, by the same index
    streams: list[int]
    browsers: list[tuple[int, int | None]]  # (browser number, run index; None = /ws/runs)
    rate: float
    window: int
    duration: float
    seed: int


@dataclass
class StreamResult:
    """One trainer-like stream; sent via the result queue as a dict (see `_worker`)."""

    run: int
    sent: int = 0  # records handed over (epochs 1..sent)
    acked: int = 0
    refused: int = 0  # error frames
    bad_frames: int = 0  # neither a valid ack nor an error frame
    out_of_order: int = 0  # acks not in send order on one connection (the backend promises it)
    dup_acks: int = 0  # acks of a seq already acked: expected after a resend
    connections: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    resent: int = 0  # messages sent again after a reconnect
    unanswered: int = 0  # still unacked when the stream gave up
    window_waits: int = 0  # times the window was full: the backend fell behind this stream
    late: int = 0  # records handed over > LATE_AFTER after their due time
    max_lag: float = 0.0  # seconds behind schedule at worst
    max_in_flight: int = 0
    sent_at: list[float] = field(default_factory=list)  # by epoch - 1
    acked_epochs: list[int] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    ack_seconds: dict[int, int] = field(default_factory=dict)  # acks per second since t0
    last_ack: float = 0.0
    details: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.details) < MAX_DETAILS:
            self.details.append(text)


@dataclass
class BrowserResult:
    browser: int
    run: int | None  # None: subscribed to every run on /ws/runs
    events: list[tuple[int, int, float]] = field(default_factory=list)  # (run, epoch, time)
    recovered: list[tuple[int, int]] = field(default_factory=list)  # from a reconnect snapshot
    duplicates: int = 0
    alerts: int = 0
    other_events: int = 0
    bad_frames: int = 0
    connections: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    details: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.details) < MAX_DETAILS:
            self.details.append(text)


def _backoff(attempt: int) -> float:
    """Jittered exponential backoff, as `trainer.emitter` does (0.1 s doubling, ≤ 2 s here)."""
    return min(2.0, 0.1 * 2 ** min(attempt, 10)) * random.uniform(0.5, 1.0)


class Stream:
    """A trainer-like ingest client: paced records, bounded window, resend after reconnect."""

    def __init__(self, spec: WorkerSpec, run: int) -> None:
        self.spec = spec
        self.run_id = spec.run_ids[run]
        self.url = f"{spec.ws_url}/ws/ingest/{self.run_id}"
        self.headers = ingest_headers(spec.tokens[run])
        self.maker = RecordMaker(self.run_id, spec.seed + run)
        self.r = StreamResult(run)
        self.pending: dict[int, str] = {}  # seq -> message; insertion order is seq order
        self.max_sent_seq = -1
        self.producing = True
        self.wake = asyncio.Event()  # a new record to send
        self.room = asyncio.Event()  # an ack made room in the window
        self.drained = asyncio.Event()  # done producing and nothing left unacked
        self.ws: ClientConnection | None = None
        self.t0 = 0.0

    async def _connect(self) -> ClientConnection:
        # Default keepalive pings and compression: what the real emitter negotiates. No proxy
        # on loopback, as the emitter does.
        ws = await connect(self.url, open_timeout=CONNECT_TIMEOUT, close_timeout=2,
                           max_size=2**21, proxy=None, additional_headers=self.headers)
        self.r.connections += 1
        return ws

    async def open(self) -> None:
        """The first connection, made before the clock starts."""
        self.ws = await self._connect()

    async def run(self, t0: float, stop_at: float, deadline: float) -> StreamResult:
        self.t0 = t0
        producer = asyncio.create_task(self._produce(t0, stop_at))
        attempt = 0
        try:
            while True:
                if self.ws is None:
                    try:
                        self.ws = await self._connect()
                    except (OSError, TimeoutError, WebSocketException) as err:
                        self.r.connect_failures += 1
                        self.r.note(f"connect failed: {type(err).__name__}: {err}")
                        attempt += 1
                        if mono() >= deadline:
                            break
                        await asyncio.sleep(_backoff(attempt))
                        continue
                ws = self.ws
                outcome = await self._exchange(ws, deadline)
                self.ws = None
                if outcome in ("drained", "deadline"):
                    await ws.close()
                    break
                self.r.disconnects += 1
                self.r.note(f"ingest connection lost at t+{mono() - t0:.1f} s: {outcome}")
                attempt += 1
                if mono() >= deadline:
                    break
                await asyncio.sleep(_backoff(attempt))
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
        self.r.unanswered = len(self.pending)
        if self.pending:
            self.r.note(f"{len(self.pending)} record(s) never answered within {DRAIN_TIMEOUT:g} s")
        return self.r

    async def _produce(self, t0: float, stop_at: float) -> None:
        rate = self.spec.rate
        phase = random.Random(self.r.run).random() / rate  # staggered, like independent trainers
        k = 0
        while True:
            due = t0 + phase + k / rate
            if due >= stop_at:
                break
            delay = due - mono()
            if delay > 0:
                await asyncio.sleep(delay)
            while len(self.pending) >= self.spec.window:
                self.r.window_waits += 1
                self.room.clear()
                await self.room.wait()
            text = self.maker.message(k, k + 1)  # seq k carries epoch k + 1
            now = mono()
            lag = now - due
            self.r.max_lag = max(self.r.max_lag, lag)
            self.r.late += lag > LATE_AFTER
            self.pending[k] = text
            self.r.sent_at.append(now)
            self.r.sent += 1
            self.r.max_in_flight = max(self.r.max_in_flight, len(self.pending))
            self.wake.set()
            k += 1
        self.producing = False
        if not self.pending:
            self.drained.set()

    async def _exchange(self, ws: ClientConnection, deadline: float) -> str:
        """Send and read on one connection until drained, lost, or past the deadline."""
        sender = asyncio.create_task(self._send(ws))
        reader = asyncio.create_task(self._read(ws))
        drained = asyncio.create_task(self.drained.wait())
        try:
            done, _ = await asyncio.wait(
                {reader, drained}, timeout=max(0.0, deadline - mono()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for task in (sender, reader, drained):
                task.cancel()
            await asyncio.gather(sender, reader, drained, return_exceptions=True)
        if drained in done:
            return "drained"
        if reader in done:
            return f"close code {ws.close_code} {ws.close_reason!r}"
        return "deadline"

    async def _send(self, ws: ClientConnection) -> None:
        last = -1  # a fresh connection resends the whole unacked buffer, as the emitter does
        try:
            while True:
                self.wake.clear()  # before the scan: a record added meanwhile wakes us again
                for seq in [s for s in self.pending if s > last]:
                    text = self.pending.get(seq)
                    if text is not None:
                        if seq <= self.max_sent_seq:
                            self.r.resent += 1
                        self.max_sent_seq = max(self.max_sent_seq, seq)
                        await ws.send(text)
                    last = seq
                await self.wake.wait()
        except ConnectionClosed:
            pass  # the reader sees the same close

    async def _read(self, ws: ClientConnection) -> None:
        last_seq = -1
        try:
            async for frame in ws:
                now = mono()
                try:
                    reply = json.loads(frame)
                    kind, seq = reply.get("type"), reply.get("seq")
                except (ValueError, AttributeError):
                    kind, seq = None, None
                if kind not in ("ack", "error") or not isinstance(seq, int):
                    self.r.bad_frames += 1
                    self.r.note(f"unexpected frame: {str(frame)[:200]}")
                    continue
                if seq <= last_seq:
                    self.r.out_of_order += 1
                last_seq = seq
                if self.pending.pop(seq, None) is None:
                    self.r.dup_acks += 1
                    continue
                if kind == "ack":
                    self.r.acked += 1
                    self.r.acked_epochs.append(seq + 1)
                    self.r.ack_ms.append(1000 * (now - self.r.sent_at[seq]))
                    second = int(now - self.t0)
                    self.r.ack_seconds[second] = self.r.ack_seconds.get(second, 0) + 1
                    self.r.last_ack = now
                else:
                    self.r.refused += 1
                    self.r.note(f"error frame: {str(frame)[:200]}")
                self.room.set()
                if not self.producing and not self.pending:
                    self.drained.set()
        except ConnectionClosed:
            pass  # `_exchange` reports the close code


class Browser:
    """A browser-like subscriber: records when each epoch's `metric` event arrives."""

    def __init__(self, spec: WorkerSpec, number: int, run: int | None) -> None:
        self.run_index = {run_id: i for i, run_id in enumerate(spec.run_ids)}
        self.url = (f"{spec.ws_url}/ws/runs" if run is None
                    else f"{spec.ws_url}/ws/runs/{spec.run_ids[run]}")
        self.r = BrowserResult(number, run)
        self.seen: set[tuple[int, int]] = set()
        self.ws: ClientConnection | None = None
        self.closing = False
        self.last_metric = 0.0

    async def _connect(self) -> ClientConnection:
        # Browsers send no keepalive pings (the server's pings are answered automatically).
        ws = await connect(self.url, open_timeout=CONNECT_TIMEOUT, close_timeout=2,
                           max_size=2**24, ping_interval=None, proxy=None)
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), CONNECT_TIMEOUT))
        if snapshot.get("type") != "snapshot":
            await ws.close()
            raise WebSocketException(f"expected a snapshot first, got {str(snapshot)[:200]}")
        # After a reconnect the run's snapshot holds the epochs missed meanwhile: a real
        # browser redraws them, so they count as recovered, not missing (no latency though).
        for record in snapshot.get("metrics") or ():
            key = (self.r.run if self.r.run is not None else -1, int(record["epoch"]))
            if key not in self.seen:
                self.seen.add(key)
                self.r.recovered.append(key)
        self.r.connections += 1
        return ws

    async def open(self) -> None:
        """Subscribed before any record is sent, so every record's event is expected."""
        self.ws = await self._connect()

    async def run(self) -> BrowserResult:
        attempt = 0
        while not self.closing:
            if self.ws is None:
                try:
                    ws = await self._connect()
                except (OSError, TimeoutError, WebSocketException) as err:
                    self.r.connect_failures += 1
                    self.r.note(f"connect failed: {type(err).__name__}: {err}")
                    attempt += 1
                    await asyncio.sleep(_backoff(attempt))
                    continue
                if self.closing:  # the bench ended while this reconnect was under way
                    await ws.close()
                    break
                self.ws = ws
            ws = self.ws
            await self._read(ws)
            self.ws = None
            if not self.closing:
                self.r.disconnects += 1
                self.r.note(f"disconnected: close code {ws.close_code} {ws.close_reason!r}")
                attempt += 1
                await asyncio.sleep(_backoff(attempt))
        return self.r

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                now = mono()
                key = (-1, -1)
                try:
                    event = json.loads(frame)
                    kind = event.get("type")
                    if kind == "metric":
                        key = (self.run_index.get(event.get("run_id"), -1),
                               int(event["record"]["epoch"]))
                except (ValueError, AttributeError, KeyError, TypeError):
                    self.r.bad_frames += 1
                    self.r.note(f"unexpected frame: {str(frame)[:200]}")
                    continue
                if kind == "metric":
                    self.last_metric = now
                    if key in self.seen:
                        self.r.duplicates += 1
                    else:
                        self.seen.add(key)
                        self.r.events.append((key[0], key[1], now))
                elif kind == "alert":
                    self.r.alerts += 1
                else:
                    self.r.other_events += 1
        except ConnectionClosed:
            pass  # `run` reports the close code

    async def close_when_quiet(self, stopped_at: float) -> None:
        """After every stream drained: leave once events stop coming (bounded)."""
        while mono() - stopped_at < LINGER_MAX and mono() - self.last_metric < QUIET_AFTER:
            await asyncio.sleep(0.05)
        self.closing = True
        if self.ws is not None:
            await self.ws.close()


async def _loop_lag(samples: list[float]) -> None:
    """How late a 50 ms sleep wakes up: a busy client loop delays sends and receive times."""
    while True:
        t = mono()
        await asyncio.sleep(0.05)
        samples.append(mono() - t - 0.05)


async def _wait_flag(flag: Any, timeout: float) -> bool:
    """Poll a multiprocessing.Event without blocking the loop (bounded)."""
    deadline = mono() + timeout
    while not flag.is_set():
        if mono() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def _worker_async(spec: WorkerSpec, ctl: dict[str, Any]) -> dict[str, Any]:
    inbox = ctl["inbox"]
    streams = [Stream(spec, run) for run in spec.streams]
    browsers = [Browser(spec, number, run) for number, run in spec.browsers]
    await asyncio.gather(*(b.open() for b in browsers))
    await asyncio.gather(*(s.open() for s in streams))
    inbox.put(("ready", spec.index, None))
    if not await _wait_flag(ctl["go"], START_TIMEOUT):
        raise TimeoutError("no go signal from the parent")
    t0 = float(ctl["t0"].value)
    lag: list[float] = []
    lag_task = asyncio.create_task(_loop_lag(lag))
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), mono()
    browser_tasks = [asyncio.create_task(b.run()) for b in browsers]
    stop_at = t0 + spec.duration
    stream_results = await asyncio.gather(
        *(s.run(t0, stop_at, stop_at + DRAIN_TIMEOUT) for s in streams)
    )
    inbox.put(("drained", spec.index, None))
    # Browsers listen until every worker's streams are done (the parent says so).
    await _wait_flag(ctl["browsers_stop"], spec.duration + DRAIN_TIMEOUT + 60)
    stopped_at = mono()
    await asyncio.gather(*(b.close_when_quiet(stopped_at) for b in browsers))
    stuck: set[asyncio.Task[BrowserResult]] = set()
    if browser_tasks:  # closed sockets end the readers; bounded in case one hangs
        _, stuck = await asyncio.wait(browser_tasks, timeout=10)
    for task in stuck:
        task.cancel()
    lag_task.cancel()
    cpu1, wall = resource.getrusage(resource.RUSAGE_SELF), mono() - wall0
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "streams": [asdict(r) for r in stream_results],
        "browsers": [asdict(b.r) for b in browsers],
        "cpu": cpu / max(wall, 1e-9),
        "loop_lag_ms": [1000 * x for x in lag],
        "stuck_browsers": len(stuck),
    }


def _worker(spec: WorkerSpec, ctl: dict[str, Any]) -> None:
    """Entry point of a load worker process; always reports, never leaves the parent waiting."""
    try:
        result = asyncio.run(_worker_async(spec, ctl))
        ctl["inbox"].put(("result", spec.index, result))
    except BaseException as err:  # report instead of hanging the parent
        ctl["inbox"].put(("failed", spec.index, f"{type(err).__name__}: {err}"))


# --- the parent: orchestration -------------------------------------------------------------


@dataclass
class Outcome:
    """What the workers handed in, plus the backend figures the parent measured."""

    t0: float
    streams: list[StreamResult]
    browsers: list[BrowserResult]
    client_cpu: list[float]
    loop_lag_ms: list[float]
    stuck_browsers: int
    backend_cpu: float  # share of one core, t0 → all streams drained
    machine_cpu: float  # % of all CPUs, same span
    peak_rss: int
    drained_after: float
    windows: list[dict[str, float]]  # CpuMeter windows of SLICE_SECONDS


class CpuMeter:
    """CPU of the backend, of the load workers and of everything else, per time window.

    On a shared machine a slow window is only explained by knowing who had the CPUs: the
    backend (busy = it is the limit), the clients, or other processes (another job), and how
    much the machine waited on the disk (iowait: SQLite commits compete with other writers).
    """

    def __init__(self, backend: Backend, pids: list[int | None]) -> None:
        self.backend = backend
        self.workers = [psutil.Process(pid) for pid in pids if pid is not None]
        self.last = self._read()

    def _read(self) -> dict[str, float]:
        m = psutil.cpu_times()
        clients = cpu_seconds(self.workers)
        # user includes guest time on Linux: sum the busy fields, not every field.
        busy = m.user + m.nice + m.system + sum(
            getattr(m, name, 0.0) for name in ("irq", "softirq", "steal"))
        return {"t": time.monotonic(), "backend": self.backend.cpu_seconds(),
                "clients": clients, "busy": busy, "iowait": getattr(m, "iowait", 0.0)}

    def window(self, t0: float) -> dict[str, float]:
        """Shares of one core since the previous call (and the backend's RSS, load average)."""
        now, last = self._read(), self.last
        self.last = now
        span = max(now["t"] - last["t"], 1e-9)
        share = {k: (now[k] - last[k]) / span for k in ("backend", "clients", "busy", "iowait")}
        return {
            "from_s": last["t"] - t0, "to_s": now["t"] - t0,
            "backend_cpu": share["backend"], "client_cpu": share["clients"],
            "other_cpu": max(0.0, share["busy"] - share["backend"] - share["clients"]),
            "machine_busy": share["busy"], "iowait": share["iowait"],
            "backend_rss": float(self.backend.rss()), "load1": loadavg()[0],
        }


@dataclass
class Measured:
    """Figures taken by the parent around the load, for the report."""

    command: str
    msg_bytes: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    idle_rss: int = 0
    idle_cpu: float = math.nan
    end_rss: int = 0
    log_errors: int = 0
    log_warnings: int = 0
    wall: float = math.nan


def _specs(args: argparse.Namespace, ws_url: str, runs: dict[str, str]) -> list[WorkerSpec]:
    run_ids, tokens = list(runs), list(runs.values())
    n = len(run_ids)
    all_runs = args.all_runs_browsers
    per_run = args.browsers - all_runs
    # Per-run browsers spread evenly over the runs; the all-runs ones take the last numbers.
    browsers: list[tuple[int, int | None]] = [(i, i * n // per_run) for i in range(per_run)]
    browsers += [(per_run + j, None) for j in range(all_runs)]
    procs = max(1, min(args.client_procs, n))
    return [
        WorkerSpec(index=w, ws_url=ws_url, run_ids=run_ids, tokens=tokens,
                   streams=list(range(w, n, procs)),
                   browsers=browsers[w::procs], rate=args.rate, window=args.window,
                   duration=args.duration, seed=1000 * w)
        for w in range(procs)
    ]


def run_load(args: argparse.Namespace, backend: Backend, runs: dict[str, str]) -> Outcome:
    """The load on `runs` (id -> ingest token)."""
    ctx = mp.get_context("spawn")  # no fork of a process holding threads and sockets
    ctl: dict[str, Any] = {"inbox": ctx.Queue(), "go": ctx.Event(),
                           "browsers_stop": ctx.Event(), "t0": ctx.Value("d", 0.0)}
    specs = _specs(args, backend.ws_url, runs)
    workers = [ctx.Process(target=_worker, args=(spec, ctl), daemon=True) for spec in specs]
    inbox = ctl["inbox"]

    def collect(kind: str, timeout: float) -> dict[int, Any]:
        """One `kind` message from every worker; a failure or a dead worker ends the bench."""
        got: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(workers):
            try:
                what, index, payload = inbox.get(timeout=0.5)
            except queue.Empty:
                if any(w.exitcode is not None for w in workers) and inbox.empty():
                    raise SystemExit(f"a load worker died while waiting for {kind!r}") from None
                if time.monotonic() > deadline:
                    raise SystemExit(f"load workers: no {kind!r} within {timeout:g} s") from None
                continue
            if what == "failed":
                raise SystemExit(f"load worker {index} failed: {payload}")
            if what == kind:
                got[index] = payload
        return got

    try:
        for w in workers:
            w.start()
        with stage(f"{len(workers)} worker(s): open {len(runs)} ingest and "
                   f"{args.browsers} browser sockets"):
            collect("ready", START_TIMEOUT)
        psutil.cpu_percent()  # resets the machine-wide counter
        cpu0 = backend.cpu_seconds()
        t0 = time.monotonic() + 0.2
        ctl["t0"].value = t0
        ctl["go"].set()
        time.sleep(max(0.0, t0 - time.monotonic()))
        meter = CpuMeter(backend, [w.pid for w in workers])
        # Wait for "drained" while printing progress, one CPU window per SLICE_SECONDS.
        windows: list[dict[str, float]] = []
        drained: dict[int, Any] = {}
        deadline = t0 + args.duration + DRAIN_TIMEOUT + 60
        print(f"load: {args.duration:g} s ...", file=sys.stderr)
        while len(drained) < len(workers):
            try:
                what, index, payload = inbox.get(timeout=0.25)
                if what == "failed":
                    raise SystemExit(f"load worker {index} failed: {payload}")
                if what == "drained":
                    drained[index] = payload
            except queue.Empty:
                if any(w.exitcode is not None for w in workers):
                    raise SystemExit("a load worker died during the load") from None
                if time.monotonic() > deadline:
                    raise SystemExit("load workers did not finish in time") from None
            if time.monotonic() - t0 >= SLICE_SECONDS * (len(windows) + 1):
                w = meter.window(t0)
                windows.append(w)
                print(f"  t+{w['to_s']:3.0f} s: CPU (% of a core) backend "
                      f"{100 * w['backend_cpu']:.0f}%, clients {100 * w['client_cpu']:.0f}%, "
                      f"other processes {100 * w['other_cpu']:.0f}%, iowait "
                      f"{100 * w['iowait']:.0f}%; backend RSS {mib(int(w['backend_rss']))}; "
                      f"load average {w['load1']:.2f}", file=sys.stderr)
        if time.monotonic() - meter.last["t"] >= 0.5:
            windows.append(meter.window(t0))  # the partial last one, up to the drain
        drained_at = time.monotonic()
        backend_cpu = (backend.cpu_seconds() - cpu0) / (drained_at - t0)
        machine_cpu = psutil.cpu_percent()
        peak_rss = backend.peak_rss(t0)
        ctl["browsers_stop"].set()
        results = collect("result", LINGER_MAX + RESULT_TIMEOUT)
    finally:
        for w in workers:
            w.join(5)
            if w.is_alive():
                w.kill()
                w.join(5)
    ordered = [results[i] for i in sorted(results)]
    return Outcome(
        t0=t0,
        streams=[StreamResult(**s) for r in ordered for s in r["streams"]],
        browsers=[_browser_result(b) for r in ordered for b in r["browsers"]],
        client_cpu=[r["cpu"] for r in ordered],
        loop_lag_ms=[x for r in ordered for x in r["loop_lag_ms"]],
        stuck_browsers=sum(r["stuck_browsers"] for r in ordered),
        backend_cpu=backend_cpu,
        machine_cpu=machine_cpu,
        peak_rss=peak_rss,
        drained_after=drained_at - t0,
        windows=windows,
    )


def _browser_result(raw: dict[str, Any]) -> BrowserResult:
    b = BrowserResult(**raw)
    # Tuples travel as tuples through pickle; keep the types honest anyway.
    b.events = [(int(r), int(e), float(t)) for r, e, t in b.events]
    b.recovered = [(int(r), int(e)) for r, e in b.recovered]
    return b


# --- verification --------------------------------------------------------------------------


@dataclass
class ExactlyOnce:
    runs: int = 0
    runs_ok: int = 0
    acked: int = 0
    stored: int = 0
    duplicates: int = 0  # extra rows of an epoch stored more than once
    acked_not_stored: int = 0
    stored_not_acked: int = 0  # allowed only if it was sent (ack lost with a connection)
    stored_never_sent: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.runs_ok == self.runs and self.runs > 0


def verify(backend: Backend, run_ids: list[str], streams: list[StreamResult]) -> ExactlyOnce:
    """Every acked (run, epoch) stored exactly once; nothing stored that was not sent."""
    v = ExactlyOnce(runs=len(streams))
    for s in streams:
        run_id = run_ids[s.run]
        resp = backend.client.get(f"/api/runs/{run_id}/metrics")
        if resp.status_code != 200:
            v.problems.append(f"{run_id}: GET metrics {resp.status_code}")
            continue
        epochs = [int(r["epoch"]) for r in resp.json()]
        stored, acked = set(epochs), set(s.acked_epochs)
        v.acked += len(acked)
        v.stored += len(epochs)
        dupes = len(epochs) - len(stored)
        missing = len(acked - stored)
        never_sent = len(stored - set(range(1, s.sent + 1)))
        v.duplicates += dupes
        v.acked_not_stored += missing
        v.stored_not_acked += len(stored - acked)
        v.stored_never_sent += never_sent
        if dupes or missing or never_sent:
            v.problems.append(f"{run_id}: {len(acked)} acked, {len(epochs)} stored, {dupes} "
                              f"duplicate(s), {missing} acked but not stored, {never_sent} "
                              "stored but never sent")
        else:
            v.runs_ok += 1
    return v


# --- the report ----------------------------------------------------------------------------


def _latency(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95),
            "p99": pct(values, 99), "max": max(values, default=math.nan)}


def _fmt(lat: dict[str, Any]) -> str:
    return (f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f} ms "
            f"(n={lat['n']:,})")


def analyse(
    args: argparse.Namespace, m: Measured, out: Outcome, v: ExactlyOnce
) -> dict[str, Any]:
    """Joins send times (stream side) with receive times (browser side) and sums errors."""
    sent_at = {s.run: s.sent_at for s in out.streams}
    acked_by_run = {s.run: set(s.acked_epochs) for s in out.streams}
    lat: dict[str, list[float]] = {"run": [], "all": []}
    n_slices = max(1, math.ceil(args.duration / SLICE_SECONDS))

    def slice_of(sent: float) -> int:
        # A record due just before the end may be handed over just after it: last slice.
        return min(n_slices - 1, max(0, int((sent - out.t0) // SLICE_SECONDS)))

    to_browser: list[list[float]] = [[] for _ in range(n_slices)]
    to_ack: list[list[float]] = [[] for _ in range(n_slices)]
    missing = {"run": 0, "all": 0}
    recovered = 0
    for b in out.browsers:
        kind = "all" if b.run is None else "run"
        for run, epoch, t in b.events:
            times = sent_at.get(run)
            if times is None or not 1 <= epoch <= len(times):
                continue  # an event of a run this bench did not send (none expected)
            sent = times[epoch - 1]
            ms = 1000 * (t - sent)
            lat[kind].append(ms)
            to_browser[slice_of(sent)].append(ms)
        seen = {(r, e) for r, e, _ in b.events} | set(b.recovered)
        recovered += len(b.recovered)
        watched = list(acked_by_run) if b.run is None else [b.run]
        for run in watched:
            missing[kind] += sum(1 for e in acked_by_run[run] if (run, e) not in seen)
    streams = out.streams
    for s in streams:
        for epoch, ms in zip(s.acked_epochs, s.ack_ms, strict=True):
            to_ack[slice_of(s.sent_at[epoch - 1])].append(ms)
    acked = sum(s.acked for s in streams)
    last_ack = max((s.last_ack for s in streams), default=out.t0)
    per_second: dict[int, int] = {}
    for s in streams:
        for sec, n in s.ack_seconds.items():
            per_second[int(sec)] = per_second.get(int(sec), 0) + n
    # Whole seconds of the paced phase only: the first and the last one are partial.
    steady = [per_second.get(sec, 0) for sec in range(1, max(1, int(args.duration) - 1))]
    errors = {
        "ingest_error_frames": sum(s.refused for s in streams),
        "ingest_bad_frames": sum(s.bad_frames for s in streams),
        "ingest_out_of_order_acks": sum(s.out_of_order for s in streams),
        "ingest_disconnects": sum(s.disconnects for s in streams),
        "ingest_connect_failures": sum(s.connect_failures for s in streams),
        "ingest_never_answered": sum(s.unanswered for s in streams),
        "browser_disconnects": sum(b.disconnects for b in out.browsers),
        "browser_connect_failures": sum(b.connect_failures for b in out.browsers),
        "browser_bad_frames": sum(b.bad_frames for b in out.browsers),
        "browser_duplicate_events": sum(b.duplicates for b in out.browsers),
        "browser_missing_events": missing["run"] + missing["all"],
        "browsers_stuck_at_close": out.stuck_browsers,
        "backend_log_errors": m.log_errors,
    }
    all_lat = lat["run"] + lat["all"]
    ack_ms = [x for s in streams for x in s.ack_ms]
    return {
        "ok": v.ok and sum(errors.values()) == 0,
        "config": {"streams": len(streams), "browsers": len(out.browsers),
                   "all_runs_browsers": sum(1 for b in out.browsers if b.run is None),
                   "duration_s": args.duration, "rate_per_stream": args.rate,
                   "window": args.window, "client_procs": len(out.client_cpu),
                   "message_bytes": m.msg_bytes},
        "records": {
            "offered_per_s": len(streams) * args.rate,
            "sent": sum(s.sent for s in streams), "acked": acked, "stored": v.stored,
            "acked_per_s": acked / max(last_ack - out.t0, 1e-9),
            "acks_per_second_min": min(steady, default=0),
            "acks_per_second_max": max(steady, default=0),
            "all_acked_after_s": out.drained_after,
            "resent": sum(s.resent for s in streams),
            "duplicate_acks": sum(s.dup_acks for s in streams),
            "late_sends": sum(s.late for s in streams),
            "max_send_lag_ms": 1000 * max((s.max_lag for s in streams), default=0.0),
            "window_full_waits": sum(s.window_waits for s in streams),
            "max_in_flight": max((s.max_in_flight for s in streams), default=0),
        },
        "latency_ms": {
            "send_to_ack": _latency(ack_ms),
            "ingest_to_browser": _latency(all_lat),
            "ingest_to_browser_per_run_ws": _latency(lat["run"]),
            "ingest_to_browser_all_runs_ws": _latency(lat["all"]),
        },
        # Per SLICE_SECONDS of send time, beside who had the CPU then (the CpuMeter windows
        # are wall-clock slices of the same length from the same start, then the drain).
        "slices": [
            {"from_s": k * SLICE_SECONDS, "to_s": min((k + 1) * SLICE_SECONDS, args.duration),
             "records": len(to_ack[k]),
             "send_to_ack_p95_ms": pct(to_ack[k], 95),
             "ingest_to_browser_p50_ms": pct(to_browser[k], 50),
             "ingest_to_browser_p95_ms": pct(to_browser[k], 95)}
            for k in range(n_slices)
        ],
        "cpu_windows": out.windows,
        "browser_events": {
            "metric_events": sum(len(b.events) for b in out.browsers),
            "recovered_from_snapshot": recovered,
            "missing_per_run_ws": missing["run"], "missing_all_runs_ws": missing["all"],
            "alerts": sum(b.alerts for b in out.browsers),
            "other_events": sum(b.other_events for b in out.browsers),
        },
        "errors": errors,
        "errors_total": sum(errors.values()),
        "exactly_once": {**asdict(v), "ok": v.ok, "problems": v.problems[:20]},
        "backend": {"rss_idle": m.idle_rss, "rss_peak": out.peak_rss,
                    "rss_end": m.end_rss, "cpu_idle": m.idle_cpu,
                    "cpu_mean": out.backend_cpu,
                    "cpu_max_window": max((w["backend_cpu"] for w in out.windows),
                                          default=math.nan),
                    "log_warnings": m.log_warnings},
        "clients": {"cpu_per_worker": out.client_cpu,
                    "loop_lag_ms_p99": pct(out.loop_lag_ms, 99),
                    "loop_lag_ms_max": max(out.loop_lag_ms, default=math.nan)},
        "machine": {"cpus": os.cpu_count(), "loadavg_before": list(m.load_before),
                    "loadavg_after": list(m.load_after), "cpu_busy_pct": out.machine_cpu},
        "details": ([f"stream {s.run}: {d}" for s in streams for d in s.details]
                    + [f"browser {b.browser}: {d}" for b in out.browsers for d in b.details]
                    )[:30],
        "command": m.command,
        "wall_s": m.wall,
    }


def table(rep: dict[str, Any]) -> str:
    c, rec, lat = rep["config"], rep["records"], rep["latency_ms"]
    ev, err, eo = rep["browser_events"], rep["errors"], rep["exactly_once"]
    be, cl, m = rep["backend"], rep["clients"], rep["machine"]
    ok = "✅" if eo["ok"] else "❌"
    rows = [
        ("load", f"{c['streams']} ingest streams × {c['rate_per_stream']:g} records/s "
                 f"(window {c['window']}), {c['browsers']} browsers "
                 f"({c['browsers'] - c['all_runs_browsers']} on /ws/runs/{{id}}, "
                 f"{c['all_runs_browsers']} on /ws/runs), {c['duration_s']:g} s, "
                 f"{c['client_procs']} client process(es), {c['message_bytes']} B/record"),
        ("records sent / acked / stored",
         f"{rec['sent']:,} / {rec['acked']:,} / {rec['stored']:,}"),
        ("records/s acked (offered)", f"{rec['acked_per_s']:,.0f} ({rec['offered_per_s']:,.0f});"
                                      f" per second {rec['acks_per_second_min']:,}–"
                                      f"{rec['acks_per_second_max']:,}"),
        ("every record acked within", f"{rec['all_acked_after_s']:.1f} s of the start"),
        ("send → ack p50 / p95 / p99 / max", _fmt(lat["send_to_ack"])),
        ("ingest → browser p50 / p95 / p99 / max, all browsers", _fmt(lat["ingest_to_browser"])),
        ("  … on /ws/runs/{id}", _fmt(lat["ingest_to_browser_per_run_ws"])),
        ("  … on /ws/runs (every run's events)", _fmt(lat["ingest_to_browser_all_runs_ws"])),
        ("metric events at browsers (recovered from a reconnect snapshot)",
         f"{ev['metric_events']:,} ({ev['recovered_from_snapshot']:,}); alerts {ev['alerts']}"),
        ("errors", f"{rep['errors_total']}" + ("" if rep["errors_total"] == 0 else ": " + ", ".join(
            f"{k} {v}" for k, v in err.items() if v))),
        ("client-side pacing: late sends (> 100 ms) / window full / resent / max in flight",
         f"{rec['late_sends']} / {rec['window_full_waits']} / {rec['resent']} / "
         f"{rec['max_in_flight']}"),
        ("exactly once (acked ⊆ stored, no duplicate, nothing unsent)",
         f"{eo['runs_ok']}/{eo['runs']} runs exact; {eo['duplicates']} duplicates, "
         f"{eo['acked_not_stored']} acked but not stored {ok}"),
        ("backend RSS idle / peak / after", f"{mib(be['rss_idle'])} / {mib(be['rss_peak'])} / "
                                            f"{mib(be['rss_end'])}"),
        (f"backend CPU (% of one core) idle / mean / busiest {SLICE_SECONDS:g} s",
         f"{100 * be['cpu_idle']:.0f}% / {100 * be['cpu_mean']:.0f}% / "
         f"{100 * be['cpu_max_window']:.0f}%"),
        ("backend log warnings", f"{be['log_warnings']}"),
        ("client CPU per worker process (% of one core, start to close incl. the drain); "
         "event-loop lag p99 / max",
         " + ".join(f"{100 * x:.0f}%" for x in cl["cpu_per_worker"])
         + f"; {cl['loop_lag_ms_p99']:.1f} / {cl['loop_lag_ms_max']:.1f} ms"),
        ("machine: CPUs / busy during the load (% of all CPUs) / load average before → after",
         f"{m['cpus']} / {m['cpu_busy_pct']:.0f}% / "
         + " ".join(f"{x:.2f}" for x in m["loadavg_before"]) + " → "
         + " ".join(f"{x:.2f}" for x in m["loadavg_after"])),
    ]
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    lines += ["", _slice_table(rep), ""]
    lines.append(f"Command (from the project root): `{rep['command']}`; "
                 f"wall {rep['wall_s']:.0f} s.")
    for d in rep["details"][:10]:
        lines.append(f"- {d}")
    for p in eo["problems"][:10]:
        lines.append(f"- {p}")
    lines.append(f"\n**{'PASS' if rep['ok'] else 'FAIL'}**")
    return "\n".join(lines)


def _slice_table(rep: dict[str, Any]) -> str:
    """Latency per slice of send time beside the CPU of the same wall-clock window."""
    lines = [
        "| seconds | records | send → ack p95 | ingest → browser p50 / p95 | CPU (% of a "
        "core): backend / clients / other processes / iowait | backend RSS | load avg |",
        "|---|---|---|---|---|---|---|",
    ]
    windows = rep["cpu_windows"]
    for i, s in enumerate(rep["slices"]):
        w = windows[i] if i < len(windows) else None
        cpu = ("—" if w is None else
               f"{100 * w['backend_cpu']:.0f} / {100 * w['client_cpu']:.0f} / "
               f"{100 * w['other_cpu']:.0f} / {100 * w['iowait']:.0f}")
        lines.append(
            f"| {s['from_s']:g}–{s['to_s']:g} | {s['records']:,} | "
            f"{s['send_to_ack_p95_ms']:.0f} ms | {s['ingest_to_browser_p50_ms']:.0f} / "
            f"{s['ingest_to_browser_p95_ms']:.0f} ms | {cpu} | "
            + ("— | —" if w is None else f"{mib(int(w['backend_rss']))} | {w['load1']:.2f}")
            + " |"
        )
    for w in windows[len(rep["slices"]):]:  # the drain after the last send
        lines.append(
            f"| {w['from_s']:.0f}–{w['to_s']:.0f} (drain) | | | | "
            f"{100 * w['backend_cpu']:.0f} / {100 * w['client_cpu']:.0f} / "
            f"{100 * w['other_cpu']:.0f} / {100 * w['iowait']:.0f} | "
            f"{mib(int(w['backend_rss']))} | {w['load1']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, help="concurrent trainer-like streams (50)")
    parser.add_argument("--browsers", type=int, help="browser websocket clients (20)")
    parser.add_argument("--all-runs-browsers", type=int,
                        help="of the browsers, how many watch /ws/runs (a fifth, at least 1)")
    parser.add_argument("--duration", type=float, help="seconds of load (60)")
    parser.add_argument("--rate", type=float, default=20.0, help="records/s per stream (20)")
    parser.add_argument("--window", type=int, default=64,
                        help="unacked records in flight per stream (64, the backend's "
                             "per-connection limit)")
    parser.add_argument("--client-procs", type=int, default=2,
                        help="load worker processes (2)")
    parser.add_argument("--quick", action="store_true", help="10 streams, 4 browsers, 10 s")
    add_backend_args(parser, out_help="also write the JSON report to this file")
    args = parser.parse_args()
    args.streams = args.streams or (10 if args.quick else 50)
    args.browsers = args.browsers if args.browsers is not None else (4 if args.quick else 20)
    args.duration = args.duration or (10.0 if args.quick else 60.0)
    if args.all_runs_browsers is None:
        args.all_runs_browsers = max(1, args.browsers // 5) if args.browsers else 0
    if not 0 <= args.all_runs_browsers <= args.browsers:
        parser.error("--all-runs-browsers must be between 0 and --browsers")
    if args.streams < 1 or args.rate <= 0 or args.window < 1 or args.duration <= 0:
        parser.error("--streams, --rate, --window and --duration must be positive")
    check_clock()
    started = time.monotonic()
    m = Measured(
        command=" ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/load.py",
                                                   *sys.argv[1:]]),
        msg_bytes=check_record_shape(), load_before=loadavg(),
    )
    # Stopped when the block ends, also on Ctrl-C or a failed stage: never left behind.
    with running_backend("cw-bench-load-", args.data) as backend:
        with stage(f"create {args.streams} runs of kind sdk"):
            pool = sdk_runs(backend, args.streams, prefix="bench-load")
        time.sleep(1.0)
        m.idle_rss = backend.rss()
        m.idle_cpu = backend.idle_cpu(2.0)
        outcome = run_load(args, backend, {r: pool.tokens[r] for r in pool.ids})
        with stage("verify: GET /api/runs/{id}/metrics of every run"):
            v = verify(backend, pool.ids, outcome.streams)
        m.end_rss = backend.rss()
        m.log_errors, m.log_warnings = backend.log_levels()
    m.load_after = loadavg()
    m.wall = time.monotonic() - started
    rep = analyse(args, m, outcome, v)
    print(table(rep))
    text = json.dumps(json_safe(rep), indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    drop_temp_dir(backend.root, args.keep)
    return 0 if rep["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
