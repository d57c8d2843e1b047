"""Backend ingest throughput and ingest → browser latency, against a real `causalwatch up`.

Starts the backend (`python -m backend.cli up`) on a free loopback port with a fresh runs
dir (SQLite file), creates runs of kind sdk with the `synthetic` preset, so no trainer
process runs: what is measured is the backend alone. Trainer-like websocket clients then
feed `WS /ws/ingest/{run_id}` (each with its run's ingest token, as a trainer does) with
valid ~1 KB epoch messages:

- throughput: 1 stream and N concurrent streams (default 20), each strictly one at a time
  (send, wait for the ack) and pipelined (up to `--window` unacked messages in flight, like
  a buffering trainer resending its backlog), for `--duration` seconds each; records/s
  stored and acked. Load runs in worker processes (`--client-procs`), whose CPU is reported
  so a client-bound figure is recognisable;
- latency: a browser client on `WS /ws/runs/{run_id}` while a trainer-like client sends at a
  steady `--rate`; per record, from just before `send` to the browser receiving that epoch's
  `metric` event (same process, monotonic clock). With the backend otherwise idle, while N
  one-at-a-time streams load it, and while N pipelined streams load it;
- backend RSS (idle, peak) and CPU; at the end, every run's stored metrics are fetched and
  checked: each record acked is stored exactly once.

    .venv/bin/python bench/backend_ingest.py [--duration 15] [--streams 20] [--quick]
        [--window 64] [--rate 50] [--latency-records 600] [--client-procs 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import queue
import resource
import shlex
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
from _common import (
    RUN_EPOCHS,
    Backend,
    RecordMaker,
    add_backend_args,
    check_record_shape,
    drop_temp_dir,
    ingest_headers,
    mib,
    pct,
    running_backend,
    sdk_runs,
    stage,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TARGET_RATE = 2_000.0  # records/s with 20 streams
TARGET_P95_MS = 250.0  # ingest → browser on loopback
DRAIN_TIMEOUT = 60.0  # seconds to wait for the last acks after a phase


# --- load streams (worker processes) -------------------------------------------------------


@dataclass
class StreamStats:
    run_id: str
    sent: int = 0
    acked: int = 0
    errors: int = 0
    disconnects: int = 0
    out_of_order: int = 0
    first_ack: float = math.inf
    last_ack: float = 0.0
    per_second: dict[int, int] = field(default_factory=dict)
    detail: list[str] = field(default_factory=list)


async def _feed(
    ws: ClientConnection, run_id: str, *, window: int, t0: float, stop_at: float, seed: int
) -> StreamStats:
    """Send epochs 1, 2, ... with at most `window` unacked; stop at `stop_at`, drain the acks."""
    stats = StreamStats(run_id)
    maker = RecordMaker(run_id, seed)
    slots = asyncio.Semaphore(window)
    sending_done = False
    finished = asyncio.Event()

    async def read() -> None:
        expected = 0
        try:
            async for frame in ws:
                now = time.monotonic()
                reply = json.loads(frame)
                if reply.get("type") == "ack":
                    stats.acked += 1
                    stats.first_ack = min(stats.first_ack, now)
                    stats.last_ack = now
                    second = int(now - t0)
                    stats.per_second[second] = stats.per_second.get(second, 0) + 1
                    if reply.get("seq") != expected:
                        stats.out_of_order += 1
                    expected = int(reply.get("seq", expected)) + 1
                else:
                    stats.errors += 1
                    if len(stats.detail) < 3:
                        stats.detail.append(f"{run_id}: {str(frame)[:200]}")
                slots.release()
                if sending_done and stats.acked + stats.errors >= stats.sent:
                    break
        except ConnectionClosed as err:
            stats.disconnects += 1
            stats.detail.append(f"{run_id}: disconnected ({err})")
        finished.set()

    reader = asyncio.create_task(read())
    try:
        epoch = 0
        while epoch < RUN_EPOCHS:
            await slots.acquire()
            if time.monotonic() >= stop_at or reader.done():
                break
            epoch += 1
            text = maker.message(epoch - 1, epoch)
            await ws.send(text)
            stats.sent += 1
    except ConnectionClosed:
        pass  # the reader counts the disconnect
    sending_done = True
    if stats.acked + stats.errors >= stats.sent:
        reader.cancel()
        finished.set()
    try:
        await asyncio.wait_for(finished.wait(), DRAIN_TIMEOUT)
    except TimeoutError:
        stats.detail.append(f"{run_id}: {stats.sent - stats.acked - stats.errors} never answered")
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    return stats


async def _worker_async(
    ws_url: str, runs: dict[str, str], *, window: int, duration: float, seed: int,
    ready: Any, go: Any, t0_value: Any,
) -> dict[str, Any]:
    run_ids = list(runs)
    conns = await asyncio.gather(
        *(connect(f"{ws_url}/ws/ingest/{run_id}", open_timeout=30, max_size=2**21,
                  additional_headers=ingest_headers(token))
          for run_id, token in runs.items())
    )
    ready.put(len(conns))
    await asyncio.to_thread(go.wait)
    t0 = float(t0_value.value)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    results = await asyncio.gather(
        *(_feed(ws, run_id, window=window, t0=t0, stop_at=t0 + duration, seed=seed + i)
          for i, (ws, run_id) in enumerate(zip(conns, run_ids, strict=True)))
    )
    wall = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for ws in conns:
        await ws.close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"streams": [vars(s) for s in results], "cpu": cpu, "wall": wall}


def _worker(ws_url: str, runs: dict[str, str], settings: dict[str, Any], out: Any) -> None:
    """A load worker process feeding `runs` (id -> ingest token): `settings` holds window,
    duration, seed, ready, go, t0_value."""
    ready = settings["ready"]
    try:
        result = asyncio.run(_worker_async(ws_url, runs, **settings))
    except Exception as err:  # report instead of hanging the parent
        ready.put(-1)
        result = {"streams": [], "cpu": 0.0, "wall": 0.0, "crash": repr(err)}
    out.put(result)


@dataclass
class LoadResult:
    name: str
    streams: list[StreamStats]
    t0: float
    duration: float
    client_cpu: list[float]
    backend_cpu: float
    system_cpu: float
    crashes: list[str]

    @property
    def acked(self) -> int:
        return sum(s.acked for s in self.streams)

    @property
    def elapsed(self) -> float:
        last = max((s.last_ack for s in self.streams), default=self.t0)
        return max(last - self.t0, 1e-9)

    @property
    def rate(self) -> float:
        return self.acked / self.elapsed

    def per_second(self) -> list[int]:
        """Acks per whole second of the phase (the partial last second left out)."""
        totals: dict[int, int] = {}
        for s in self.streams:
            for sec, n in s.per_second.items():
                totals[sec] = totals.get(sec, 0) + n
        return [totals.get(sec, 0) for sec in range(int(self.duration))]


class Load:
    """N ingest streams over `procs` worker processes; `start()` returns once all connected.

    `runs`: run id -> ingest token, one stream per run.
    """

    def __init__(
        self, name: str, backend: Backend, runs: dict[str, str], *, window: int,
        duration: float, procs: int, seed: int,
    ) -> None:
        self.name = name
        self.backend = backend
        self.duration = duration
        ctx = mp.get_context("spawn")
        self.ready: Any = ctx.Queue()
        self.out: Any = ctx.Queue()
        self.go: Any = ctx.Event()
        self.t0_value: Any = ctx.Value("d", 0.0)
        run_ids = list(runs)
        procs = max(1, min(procs, len(run_ids)))
        shares = [{r: runs[r] for r in run_ids[i::procs]} for i in range(procs)]
        self.workers = [
            ctx.Process(
                target=_worker,
                args=(backend.ws_url, share,
                      {"window": window, "duration": duration, "seed": seed + 1000 * i,
                       "ready": self.ready, "go": self.go, "t0_value": self.t0_value},
                      self.out),
                daemon=True,
            )
            for i, share in enumerate(shares)
        ]
        self.t0 = 0.0
        self._cpu0 = 0.0

    def start(self) -> float:
        for w in self.workers:
            w.start()
        deadline = time.monotonic() + 120
        connected = 0
        while connected < len(self.workers):
            try:
                if self.ready.get(timeout=0.5) < 0:
                    raise SystemExit(f"{self.name}: a load worker failed to connect")
                connected += 1
            except queue.Empty:
                dead = [w for w in self.workers if w.exitcode is not None]
                if dead or time.monotonic() > deadline:
                    raise SystemExit(f"{self.name}: load workers did not start") from None
        psutil.cpu_percent()  # resets the system-wide counter
        self._cpu0 = self.backend.cpu_seconds()
        self.t0 = time.monotonic()
        self.t0_value.value = self.t0
        self.go.set()
        return self.t0

    def join(self) -> LoadResult:
        results = [self.out.get(timeout=self.duration + DRAIN_TIMEOUT + 60) for _ in self.workers]
        backend_cpu = self.backend.cpu_seconds() - self._cpu0
        wall = time.monotonic() - self.t0
        system_cpu = psutil.cpu_percent()
        for w in self.workers:
            w.join(30)
        streams = [StreamStats(**s) for r in results for s in r["streams"]]
        return LoadResult(
            name=self.name, streams=streams, t0=self.t0, duration=self.duration,
            client_cpu=[r["cpu"] / max(r["wall"], 1e-9) for r in results],
            backend_cpu=backend_cpu / wall, system_cpu=system_cpu,
            crashes=[r["crash"] for r in results if "crash" in r],
        )


def run_load(
    name: str, backend: Backend, runs: dict[str, str], *, window: int, duration: float,
    procs: int, seed: int,
) -> LoadResult:
    load = Load(name, backend, runs, window=window, duration=duration, procs=procs, seed=seed)
    load.start()
    result = load.join()
    print(f"  {name}: {result.acked} acked in {result.elapsed:.1f} s = {result.rate:,.0f} rec/s "
          f"(backend CPU {100 * result.backend_cpu:.0f}% of a core, client CPU "
          f"{'/'.join(f'{100 * c:.0f}%' for c in result.client_cpu)}, machine "
          f"{result.system_cpu:.0f}%)", file=sys.stderr)
    return result


# --- latency probe (this process) --------------------------------------------------------


@dataclass
class LatencyResult:
    name: str
    run_id: str
    to_browser_ms: list[float]
    to_ack_ms: list[float]
    sent: int
    errors: int
    disconnects: int
    missing: int
    detail: list[str]
    acked: int = 0


async def _latency_probe(
    name: str, ws_url: str, run: tuple[str, str], records: int, rate: float
) -> LatencyResult:
    run_id, token = run
    maker = RecordMaker(run_id, 7)
    sent_at: dict[int, float] = {}
    browser_at: dict[int, float] = {}
    ack_at: dict[int, float] = {}
    result = LatencyResult(name, run_id, [], [], 0, 0, 0, 0, [])
    async with connect(f"{ws_url}/ws/runs/{run_id}", open_timeout=30, max_size=2**24) as browser:
        snapshot = json.loads(await asyncio.wait_for(browser.recv(), 30))
        if snapshot.get("type") != "snapshot":
            raise SystemExit(f"{name}: expected a snapshot first, got {str(snapshot)[:200]}")
        all_seen = asyncio.Event()

        async def watch() -> None:
            try:
                async for frame in browser:
                    now = time.monotonic()
                    event = json.loads(frame)
                    if event.get("type") == "metric" and event.get("run_id") == run_id:
                        browser_at.setdefault(int(event["record"]["epoch"]), now)
                        if len(browser_at) >= records:
                            all_seen.set()
                            return
            except ConnectionClosed as err:
                result.disconnects += 1
                result.detail.append(f"browser socket closed: {err}")
            all_seen.set()

        async with connect(
            f"{ws_url}/ws/ingest/{run_id}", open_timeout=30, max_size=2**21,
            additional_headers=ingest_headers(token),
        ) as trainer:

            async def acks() -> None:
                try:
                    async for frame in trainer:
                        now = time.monotonic()
                        reply = json.loads(frame)
                        if reply.get("type") == "ack":
                            ack_at.setdefault(int(reply["seq"]), now)
                        else:
                            result.errors += 1
                            result.detail.append(f"error frame: {str(frame)[:200]}")
                except ConnectionClosed as err:
                    result.disconnects += 1
                    result.detail.append(f"ingest socket closed: {err}")

            watcher = asyncio.create_task(watch())
            acker = asyncio.create_task(acks())
            start = time.monotonic() + 0.05
            for i in range(records):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                epoch = i + 1
                text = maker.message(i, epoch)
                sent_at[epoch] = time.monotonic()
                await trainer.send(text)
                result.sent += 1
            # Every metric event is published before its ack is sent: once all acks are
            # in, a missing event gets a few seconds of grace, not more.
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while len(ack_at) < records and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            try:
                await asyncio.wait_for(all_seen.wait(), 3)
            except TimeoutError:
                result.detail.append(
                    f"{name}: {records - len(browser_at)} acked epoch(s) never reached the "
                    f"browser: {sorted(set(sent_at) - set(browser_at))[:10]}"
                )
            watcher.cancel()
            acker.cancel()
            await asyncio.gather(watcher, acker, return_exceptions=True)
    result.to_browser_ms = [
        1000 * (browser_at[e] - sent_at[e]) for e in sent_at if e in browser_at
    ]
    result.to_ack_ms = [1000 * (ack_at[e - 1] - sent_at[e]) for e in sent_at if e - 1 in ack_at]
    result.missing = records - len(result.to_browser_ms)
    result.acked = len(ack_at)
    return result


def latency_probe(name: str, backend: Backend, run: tuple[str, str], records: int,
                  rate: float) -> LatencyResult:
    """`run`: (run id, its ingest token)."""
    result = asyncio.run(_latency_probe(name, backend.ws_url, run, records, rate))
    b = result.to_browser_ms
    print(f"  {name}: ingest→browser p50 {pct(b, 50):.1f} ms, p95 {pct(b, 95):.1f} ms, "
          f"max {max(b, default=math.nan):.1f} ms over {len(b)} records", file=sys.stderr)
    return result


# --- verification --------------------------------------------------------------------------


@dataclass
class Verification:
    runs: int = 0
    runs_ok: int = 0
    expected: int = 0
    stored: int = 0
    problems: list[str] = field(default_factory=list)


def verify(backend: Backend, expected: dict[str, int]) -> Verification:
    """Each run's stored epochs are exactly 1..acked (every record stored once, no gaps)."""
    v = Verification(runs=len(expected), expected=sum(expected.values()))
    for run_id, n in expected.items():
        resp = backend.client.get(f"/api/runs/{run_id}/metrics")
        if resp.status_code != 200:
            v.problems.append(f"{run_id}: GET metrics {resp.status_code}")
            continue
        epochs = [int(r["epoch"]) for r in resp.json()]
        v.stored += len(epochs)
        if len(epochs) == n and set(epochs) == set(range(1, n + 1)):
            v.runs_ok += 1
        else:
            dupes = len(epochs) - len(set(epochs))
            v.problems.append(
                f"{run_id}: {n} acked, {len(epochs)} stored ({dupes} duplicate epochs)"
            )
    return v


# --- the report ----------------------------------------------------------------------------


def fmt_latency(values: list[float]) -> str:
    return (f"{pct(values, 50):.1f} / {pct(values, 95):.1f} / {max(values, default=math.nan):.1f}"
            f" ms (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, help="seconds per throughput phase (15)")
    parser.add_argument("--streams", type=int, default=20, help="concurrent streams (20)")
    parser.add_argument("--window", type=int, default=64, help="unacked in flight (64)")
    parser.add_argument("--rate", type=float, default=50.0, help="latency probe records/s")
    parser.add_argument("--latency-records", type=int, help="per latency phase (600)")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="load worker processes for the N-stream phases (1)")
    parser.add_argument("--quick", action="store_true", help="3 s phases, 200 latency records")
    add_backend_args(parser, out_help="also write the table to this file")
    args = parser.parse_args()
    duration = args.duration or (3.0 if args.quick else 15.0)
    lat_records = args.latency_records or (200 if args.quick else 600)
    n = args.streams
    started = time.monotonic()
    load_avg = os.getloadavg()[0]
    msg_bytes = check_record_shape()
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/backend_ingest.py",
                                                 *sys.argv[1:]])

    # Stopped when the block ends, also on Ctrl-C or a failed stage: never left behind.
    with running_backend("cw-bench-ingest-", args.data) as backend:
        with stage(f"create {4 * n + 5} runs of kind sdk"):
            pool = sdk_runs(backend, 4 * n + 5)
        take = pool.take_tokens

        time.sleep(1.0)
        idle_rss = backend.rss()
        idle_cpu = backend.idle_cpu(1.0)
        load_start = time.monotonic()
        loads: list[LoadResult] = []
        with stage("throughput"):
            phases = [
                ("1 stream, one at a time", 1, 1, 1),
                (f"1 stream, window {args.window}", 1, args.window, 1),
                (f"{n} streams, one at a time", n, 1, args.client_procs),
                (f"{n} streams, window {args.window}", n, args.window, args.client_procs),
            ]
            for seed, (name, streams, window, procs) in enumerate(phases, start=1):
                loads.append(run_load(name, backend, take(streams), window=window,
                                      duration=duration, procs=procs, seed=seed))
        with stage("latency"):
            probes = [latency_probe("idle", backend, take(1).popitem(), lat_records, args.rate)]
            probe_seconds = lat_records / args.rate
            for seed, window, label in ((5, 1, "one at a time"),
                                        (6, args.window, f"window {args.window}")):
                load = Load(f"{n} streams, {label}, during the latency probe", backend,
                            take(n), window=window, duration=probe_seconds + 4.0,
                            procs=args.client_procs, seed=seed)
                load.start()
                time.sleep(1.5)  # let the load reach its steady state
                probes.append(latency_probe(f"while {n} streams ({label}) load", backend,
                                            take(1).popitem(), lat_records, args.rate))
                loads.append(load.join())
                print(f"  background load: {loads[-1].rate:,.0f} rec/s", file=sys.stderr)
        peak_rss = backend.peak_rss(load_start)
        end_rss = backend.rss()
        with stage("verify"):
            expected = {s.run_id: s.acked for r in loads for s in r.streams}
            expected.update({r.run_id: r.acked for r in probes})
            v = verify(backend, expected)
        log_errors, log_warnings = backend.log_levels()

    errors = sum(s.errors for r in loads for s in r.streams) + sum(p.errors for p in probes)
    disconnects = (sum(s.disconnects for r in loads for s in r.streams)
                   + sum(p.disconnects for p in probes))
    out_of_order = sum(s.out_of_order for r in loads for s in r.streams)
    sent = sum(s.sent for r in loads for s in r.streams) + sum(p.sent for p in probes)
    details = [d for p in probes for d in p.detail]
    details += [d for r in loads for s in r.streams for d in s.detail]
    details += [c for r in loads for c in r.crashes]
    wall = time.monotonic() - started

    rows: list[tuple[str, str, str]] = []
    target_rate = f"≥ {TARGET_RATE:,.0f} records/s"
    for r in loads[:4]:
        many = len(r.streams) == n and n > 1
        met = "" if not many else (" ✅" if r.rate >= TARGET_RATE else " ❌")
        secs = r.per_second()
        spread = f"; per second {min(secs):,}–{max(secs):,}" if secs else ""
        rows.append((
            f"ingest, {r.name}",
            f"{r.rate:,.0f} records/s ({r.acked:,} in {r.elapsed:.1f} s{spread}){met}",
            target_rate if many else "—",
        ))
    one, one_w, many, many_w = loads[:4]
    rows.append((
        "records per backend CPU-second (≈ the rate with one whole core; robust to other "
        "load on the machine), per phase above",
        " / ".join(f"{r.acked / max(r.backend_cpu * r.elapsed, 1e-9):,.0f}" for r in loads[:4]),
        f"≥ {TARGET_RATE:,.0f} with {n} streams",
    ))
    rows.append((
        "pipelining effect (window / one at a time)",
        f"1 stream ×{one_w.rate / one.rate:.2f}; {n} streams ×{many_w.rate / many.rate:.2f}",
        "—",
    ))
    for r in loads[4:]:
        rows.append((f"ingest, {r.name}", f"{r.rate:,.0f} records/s", "—"))
    for r in probes:
        met = " ✅" if pct(r.to_browser_ms, 95) < TARGET_P95_MS and r.missing == 0 else " ❌"
        rows.append((
            f"ingest → browser p50 / p95 / max, {r.name} ({args.rate:g} records/s)",
            fmt_latency(r.to_browser_ms)
            + (f", {r.missing} acked record(s) never reached the browser" if r.missing else "")
            + met,
            f"p95 < {TARGET_P95_MS:.0f} ms",
        ))
        rows.append((f"send → ack p50 / p95 / max, {r.name}", fmt_latency(r.to_ack_ms), "—"))
        tenth = max(1, len(r.to_browser_ms) // 10)
        rows.append((
            f"ingest → browser p50, first / last 10% of the records, {r.name} (growth = a "
            "backlog on the probe's connection)",
            f"{pct(r.to_browser_ms[:tenth], 50):.1f} / {pct(r.to_browser_ms[-tenth:], 50):.1f} ms",
            "—",
        ))
    rows.append(("backend CPU (% of one core), idle / per load phase",
                 f"{100 * idle_cpu:.0f}% / "
                 + " / ".join(f"{100 * r.backend_cpu:.0f}%" for r in loads), "—"))
    rows.append(("load-client CPU (% of one core per worker process), per load phase",
                 " / ".join("+".join(f"{100 * c:.0f}%" for c in r.client_cpu) for r in loads)
                , "—"))
    cpus = os.cpu_count() or 1
    others = [max(0.0, r.system_cpu * cpus - 100 * (r.backend_cpu + sum(r.client_cpu)))
              for r in loads]
    rows.append((
        "machine: CPUs / load average at start / CPU busy per load phase (all processes) / "
        "of which other processes (% of one core)",
        f"{cpus} / {load_avg:.1f} / " + " / ".join(f"{r.system_cpu:.0f}%" for r in loads)
        + " / " + " / ".join(f"{o:.0f}%" for o in others),
        "—",
    ))
    rows.append(("backend RSS idle / peak under load / after the load",
                 f"{mib(idle_rss)} / {mib(peak_rss)} / {mib(end_rss)}", "—"))
    lat_sent = sum(p.sent for p in probes)
    lat_seen = sum(len(p.to_browser_ms) for p in probes)
    rows.append((
        "records acked = stored exactly once (GET /api/runs/{id}/metrics)",
        f"{v.stored:,} stored / {v.expected:,} acked / {sent:,} sent; "
        f"{v.runs_ok}/{v.runs} runs exact" + (" ✅" if v.runs_ok == v.runs
                                                and v.expected == sent else " ❌"),
        "all",
    ))
    rows.append(("latency probe records seen by the browser",
                 f"{lat_seen} / {lat_sent}", "all"))
    rows.append(("error frames / disconnects / out-of-order acks",
                 f"{errors} / {disconnects} / {out_of_order}", "0 / 0 / 0"))
    rows.append(("backend log: errors / warnings", f"{log_errors} / {log_warnings}", "0 / 0"))
    rows.append(("message size", f"{msg_bytes} bytes (one epoch message as JSON)", "~1 KB"))

    lines = ["| figure | value | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines.append("")
    lines.append(f"Command (from the project root): `{command}`  ")
    lines.append(f"Wall time {wall:.0f} s; {duration:g} s per throughput phase; "
                 f"{lat_records} latency records per probe; backend `{' '.join(backend.argv[1:])}`"
                 f" with SQLite in a temp dir.")
    notes = v.problems + details[:10]
    notes.insert(0, f"{4 * n + 5} runs of kind sdk (no trainer process): the bench is their "
                    "trainer, each stream with its run's ingest token")
    for note in notes:
        lines.append(f"- {note}")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    drop_temp_dir(backend.root, args.keep)


if __name__ == "__main__":
    main()
