"""The supervisor in process with real child processes (backend/supervisor.py): slots,
spawn, stop, the SIGTERM → SIGKILL escalation, exits and shutdown.

Its trainers are a stand-in interpreter (`Settings.python`) that trains nothing: each run's
config names what its stand-in does, so no test pays a torch import.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from backend.executors import OUTPUT_FILE, REQUEST_FILE
from backend.schemas import RunKind, RunPublic, RunStatus
from backend.settings import Settings
from backend.store import Store
from backend.supervisor import Supervisor

T = TypeVar("T")
TIMEOUT = 30.0  # generous: a loaded machine starts processes slowly

# Run as `<this> -m trainer --preset ... --config <file> --run-id <id> ...`, like Python.
STAND_IN = """\
#!{python}
import json, signal, sys, time
config = json.load(open(sys.argv[sys.argv.index("--config") + 1]))
act = config["stand_in"]
print("stand-in trainer of", sys.argv[sys.argv.index("--run-id") + 1], flush=True)
if act == "deaf":  # a trainer stuck where SIGTERM does not reach it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if act.startswith("exit "):
    print("Traceback: something broke", flush=True)
    sys.exit(int(act.split()[1]))
time.sleep(3600)
"""


class Bench:
    """A supervisor on a real SQLite store, its stand-in trainers, and what it notified."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        python = tmp_path / "stand_in_python"
        python.write_text(STAND_IN.format(python=sys.executable))
        python.chmod(0o755)
        self.settings = Settings(runs_dir=tmp_path / "runs", python=str(python),
                                 poll_interval=0.05, **settings)
        self.store = Store.from_url(self.settings.db_url)
        self.notified: list[RunPublic] = []
        self.supervisor = Supervisor(self.settings, self.store, self.notified.append)

    def queue(self, run_id: str, stand_in: str = "sleep",
              kind: RunKind = RunKind.run) -> str:
        config = {"dataset": "synthetic", "epochs": 5, "stand_in": stand_in}
        self.store.create_run(run_id=run_id, preset="synthetic", config=config, kind=kind)
        self.supervisor.poke()
        return run_id

    def run(self, run_id: str) -> RunPublic:
        run = self.store.get_run(run_id)
        assert run is not None
        return run

    async def until(self, run_id: str, *statuses: RunStatus) -> RunPublic:
        deadline = time.monotonic() + TIMEOUT
        while (run := self.run(run_id)).status not in statuses:
            assert time.monotonic() < deadline, (run_id, run.status, statuses)
            await asyncio.sleep(0.02)
        return run


def play(tmp_path: Path, scenario: Callable[[Bench], Awaitable[T]], **settings: Any) -> T:
    bench = Bench(tmp_path, **settings)

    async def main() -> T:
        await bench.supervisor.start()
        try:
            return await scenario(bench)
        finally:
            await bench.supervisor.shutdown()

    try:
        return asyncio.run(main())
    finally:
        bench.store.engine.dispose()


def alive(pid: int | None) -> bool:
    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_queued_run_gets_a_trainer_with_its_request_and_stops_on_request(
    tmp_path: Path,
) -> None:
    async def scenario(b: Bench) -> tuple[RunPublic, RunPublic, int | None]:
        running = await b.until(b.queue("r1"), RunStatus.running)
        pid = b.store.get_pid("r1")
        assert alive(pid) and b.supervisor.active == 1
        output = b.settings.runs_dir / "r1" / OUTPUT_FILE
        while "stand-in trainer of r1" not in output.read_text():
            await asyncio.sleep(0.02)  # its output goes to the run folder
        b.supervisor.stop("r1")
        return running, await b.until("r1", RunStatus.stopped), pid

    running, stopped, pid = play(tmp_path, scenario)
    assert running.started_at is not None
    assert stopped.status_reason == "stop requested; trainer stopped"
    assert not alive(pid)
    # The config travels in a file, nothing of it on the command line.
    request = json.loads((tmp_path / "runs" / "r1" / REQUEST_FILE).read_text())
    assert request["stand_in"] == "sleep"


def test_runs_wait_for_a_free_slot_in_the_order_they_were_queued(tmp_path: Path) -> None:
    async def scenario(b: Bench) -> list[RunStatus]:
        b.queue("first")
        await b.until("first", RunStatus.running)
        b.queue("second")
        b.queue("third")
        await asyncio.sleep(0.3)  # several passes: still one slot
        waiting = [b.run(r).status for r in ("first", "second", "third")]
        b.supervisor.stop("first")
        await b.until("second", RunStatus.running)
        assert b.run("third").status is RunStatus.queued
        b.supervisor.stop("third")  # nothing queued at shutdown: a freed slot would start it
        return waiting

    assert play(tmp_path, scenario, max_runs=1) == [
        RunStatus.running, RunStatus.queued, RunStatus.queued]


def test_a_probe_takes_a_slot_of_its_own(tmp_path: Path) -> None:
    async def scenario(b: Bench) -> None:
        await b.until(b.queue("user"), RunStatus.running)
        await b.until(b.queue("probe", kind=RunKind.probe), RunStatus.running)
        await asyncio.sleep(0.2)
        assert b.run(b.queue("user2")).status is RunStatus.queued
        b.supervisor.stop("user2")  # nothing queued at shutdown: a freed slot would start it

    play(tmp_path, scenario, max_runs=1, max_probes=1)


def test_a_crashed_trainer_fails_its_run_with_the_exit_and_its_last_lines(
    tmp_path: Path,
) -> None:
    async def scenario(b: Bench) -> RunPublic:
        return await b.until(b.queue("r1", "exit 3"), RunStatus.failed)

    failed = play(tmp_path, scenario)
    reason = failed.status_reason or ""
    assert reason.startswith("trainer exited with code 3")
    assert "last lines of the trainer's output:" in reason
    assert "Traceback: something broke" in reason


def test_a_trainer_that_exits_cleanly_without_a_word_completes(tmp_path: Path) -> None:
    async def scenario(b: Bench) -> RunPublic:
        return await b.until(b.queue("r1", "exit 0"), RunStatus.completed)

    assert play(tmp_path, scenario).status_reason == "trainer exited normally"


def test_a_trainer_deaf_to_sigterm_is_killed_after_the_stop_timeout(tmp_path: Path) -> None:
    async def scenario(b: Bench) -> tuple[RunPublic, float, int | None]:
        await b.until(b.queue("r1", "deaf"), RunStatus.running)
        pid = b.store.get_pid("r1")
        await asyncio.sleep(0.3)  # let it install its handler
        asked = time.monotonic()
        b.supervisor.stop("r1")
        await asyncio.sleep(0.3)
        assert b.run("r1").status is RunStatus.running, "SIGTERM alone does not end it"
        stopped = await b.until("r1", RunStatus.stopped)
        return stopped, time.monotonic() - asked, pid

    stopped, waited, pid = play(tmp_path, scenario, stop_timeout=1.0)
    assert stopped.status_reason == "stop requested; trainer killed after the stop timeout"
    assert waited >= 1.0
    assert not alive(pid)


def test_a_run_past_max_run_seconds_is_stopped_with_the_reason(tmp_path: Path) -> None:
    async def scenario(b: Bench) -> RunPublic:
        await b.until(b.queue("r1"), RunStatus.running)
        return await b.until("r1", RunStatus.stopped)

    stopped = play(tmp_path, scenario, max_run_seconds=0.5)
    assert stopped.status_reason == "ran longer than max_run_seconds (0.5 s); trainer stopped"


def test_stopping_a_queued_run_starts_nothing(tmp_path: Path) -> None:
    async def scenario(b: Bench) -> RunPublic:
        await b.until(b.queue("busy"), RunStatus.running)
        b.queue("waiting")
        stopped = b.supervisor.stop("waiting")
        b.supervisor.stop("busy")
        await b.until("busy", RunStatus.stopped)
        await asyncio.sleep(0.3)  # a free slot, several passes
        assert stopped is not None
        return b.run("waiting")

    waiting = play(tmp_path, scenario, max_runs=1)
    assert (waiting.status, waiting.status_reason) == (
        RunStatus.stopped, "stopped before it started")
    assert waiting.started_at is None
    assert not (tmp_path / "runs" / "waiting").exists()


def test_an_sdk_runs_word_ends_it_at_once(tmp_path: Path) -> None:
    async def scenario(b: Bench) -> RunPublic:
        b.store.create_run(run_id="mine", preset="synthetic", config={}, kind=RunKind.sdk,
                           epochs_total=0)
        b.store.set_status("mine", RunStatus.running)
        b.supervisor.report("mine", "finished", {"status": "stopped", "reason": "user quit"})
        return b.run("mine")

    ended = play(tmp_path, scenario)
    assert (ended.status, ended.status_reason) == (RunStatus.stopped, "user quit")


def test_shutdown_stops_every_trainer_and_records_why(tmp_path: Path) -> None:
    bench = Bench(tmp_path, max_runs=2)
    pids: list[int | None] = []

    async def main() -> None:
        await bench.supervisor.start()
        for run_id in ("a", "b"):
            await bench.until(bench.queue(run_id), RunStatus.running)
            pids.append(bench.store.get_pid(run_id))
        await bench.supervisor.shutdown()

    try:
        asyncio.run(main())
        for run_id in ("a", "b"):
            run = bench.run(run_id)
            assert (run.status, run.status_reason) == (
                RunStatus.stopped, "backend shut down; trainer stopped")
        assert not any(alive(pid) for pid in pids)
        assert bench.supervisor.active == 0
    finally:
        bench.store.engine.dispose()


def test_a_tick_caught_by_shutdown_starts_no_queued_run(tmp_path: Path) -> None:
    """Shutdown cancels the monitor, but a tick already under way (in its thread) finishes:
    the slot freed by the stopped trainer must not go to a queued run nobody would stop."""
    bench = Bench(tmp_path, max_runs=1)

    async def main() -> None:
        await bench.supervisor.start()
        await bench.until(bench.queue("a"), RunStatus.running)
        bench.queue("b")
        ending = asyncio.create_task(bench.supervisor.shutdown())
        await bench.until("a", RunStatus.stopped)  # its slot is free, shutdown still going
        bench.supervisor._tick()  # the tick that was running when the monitor was cancelled
        await ending

    try:
        asyncio.run(main())
        assert bench.run("b").status is RunStatus.queued
        assert bench.store.get_pid("b") is None
    finally:
        bench.store.engine.dispose()


@pytest.mark.parametrize(("code", "end"), [(0, RunStatus.completed), (3, RunStatus.failed)])
def test_every_status_change_is_notified(tmp_path: Path, code: int, end: RunStatus) -> None:
    async def scenario(b: Bench) -> list[RunStatus]:
        await b.until(b.queue("r1", f"exit {code}"), end)
        return [r.status for r in b.notified if r.id == "r1"]

    assert play(tmp_path, scenario) == [RunStatus.running, end]
