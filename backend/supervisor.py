"""Spawn, stop and reap trainers; keep the run states true to what the trainers do.

A run is `queued` until a slot (`max_runs`) frees, `running` while its trainer lives, then
`completed`, `stopped` or `failed` (with the reason and the last lines of its log). Where a
trainer runs is the executor's business (backend/executors/: subprocesses of this machine,
or Ray actors on a cluster); the states, stop timeouts and outcomes are decided here, the
same for every executor. A backend that dies leaves trainers training (they buffer and
resend), and the next backend re-attaches to the ones still alive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.datasets import DatasetError, trainer_file_args
from backend.executors import (
    OUTPUT_FILE,
    REQUEST_FILE,
    Ended,
    Launch,
    LaunchError,
    TrainerHandle,
    make_executor,
)
from backend.schemas import RunKind, RunPublic, RunStatus
from backend.settings import Settings
from backend.store import Store
from trainer.protocol import LOG_FILE, METRICS_FILE, OUTCOME_FILE, EpochRecord, Outcome

logger = logging.getLogger("causalwatch.supervisor")

# The trainer's outcome (trainer/protocol.py Outcome) as a run status.
OUTCOME_STATUS = {
    "completed": RunStatus.completed,
    "early_stopped": RunStatus.completed,
    "stopped": RunStatus.stopped,
    "failed": RunStatus.failed,
}


@dataclass
class TrainerProcess:
    run_id: str
    handle: TrainerHandle
    kind: RunKind = RunKind.run
    stop_requested_at: float | None = None
    stop_reason: str | None = None  # why the backend stopped it, when it was not asked to
    started_at: float = field(default_factory=time.monotonic)
    killed: bool = False
    reattached: bool = False  # started by an earlier backend: part of its stream went nowhere


def describe_exit(code: int) -> str:
    if code < 0 and code != -1:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"trainer killed by signal {name}"
    if code == -1:
        return "trainer ended while the backend was away; exit code unknown"
    return f"trainer exited with code {code}"


def read_outcome(run_dir: Path) -> Outcome | None:
    """How the trainer says its run ended, from the run folder; None when it wrote nothing.

    Run folders from before outcome.json have only their log's last words
    (`COMPLETED: <reason>`), read as the same outcome.
    """
    try:
        return Outcome.model_validate_json((run_dir / OUTCOME_FILE).read_text("utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return None
    for line in reversed(tail(run_dir / LOG_FILE, 5)):
        word, sep, why = line.partition(": ")
        if sep and word.lower() in OUTCOME_STATUS:
            return Outcome(status=word.lower(), reason=why)  # type: ignore[arg-type]
    return None


def tail(path: Path, lines: int) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        notify: Callable[[RunPublic], None],
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.notify = notify
        self.on_tick = on_tick  # after each pass: the probes' judge
        self.runs_dir = settings.runs_dir.resolve()
        self.executor = make_executor(settings)
        self._procs: dict[str, TrainerProcess] = {}
        self._reports: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._shutting_down = False
        # Held while a queued run is claimed and spawned, and while a stop decides whether a
        # run is still queued: a run stopped in that window must never get a trainer.
        self._claim = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        # Off the event loop (connecting to a cluster blocks), and off the main thread: Ray
        # would otherwise take over SIGTERM, which uvicorn needs for its graceful shutdown.
        await asyncio.to_thread(self.executor.start)
        await asyncio.to_thread(self._reconcile)
        self._task = asyncio.create_task(self._monitor(), name="supervisor")

    async def shutdown(self) -> None:
        """Stop every trainer (gracefully, then by force) and record how each ended."""
        self._shutting_down = True
        if self._task is not None:
            self._task.cancel()
        for tp in list(self._procs.values()):
            # A probe keeps nothing worth a graceful end, and at nice 19 on a busy machine it
            # may not even reach its signal handler before the stop timeout: killed at once.
            probe = tp.kind is RunKind.probe
            tp.handle.kill() if probe else tp.handle.terminate()
            tp.killed = probe
            tp.stop_requested_at = time.monotonic()
        deadline = time.monotonic() + self.settings.stop_timeout
        while self._procs and time.monotonic() < deadline:
            self._reap()
            await asyncio.sleep(0.05)
        for tp in list(self._procs.values()):
            tp.handle.kill()
            tp.killed = True
        await asyncio.sleep(0.1)
        self._reap()
        await asyncio.to_thread(self.executor.close)

    def _reconcile(self) -> None:
        """Runs a previous backend left `running`: re-attach live trainers, fail the rest."""
        for run in self.store.runs_in_status(RunStatus.running):
            if run.kind is RunKind.sdk:
                continue  # its feeder is the user's process: it reconnects and resends
            handle = self.executor.reattach(run.id, self.store.get_pid(run.id))
            if handle is not None:
                logger.info("re-attached to trainer of %s (%s, pid %s)",
                            run.id, self.executor.name, handle.pid)
                self._procs[run.id] = TrainerProcess(
                    run.id, handle, kind=run.kind, reattached=True
                )
            else:
                status, reason = self._recover_from_files(run.id)
                updated = self.store.set_status(run.id, status, reason)
                if updated:
                    self.notify(updated)

    def _recover_from_files(self, run_id: str) -> tuple[RunStatus, str]:
        """A trainer that ended while no backend listened left its own record: store the
        epochs its metrics.jsonl holds (idempotent) and take the outcome it wrote."""
        self._import_metrics_file(run_id)
        outcome = read_outcome(self.runs_dir / run_id)
        if outcome is None:
            return RunStatus.failed, "backend restarted; its trainer was gone"
        return (
            OUTCOME_STATUS[outcome.status],
            f"{outcome.reason} (ended while the backend was away; recovered from its files)",
        )

    def _import_metrics_file(self, run_id: str) -> None:
        """Store the epochs a trainer's metrics.jsonl holds (idempotent: stored epochs stay)."""
        records = []
        try:
            path = self.runs_dir / run_id / METRICS_FILE
            for line in path.read_text("utf-8").splitlines():
                try:
                    records.append(EpochRecord.model_validate_json(line).model_dump())
                except ValueError:
                    continue  # a line cut by a crash: the epochs before it still count
        except OSError:
            pass
        if records:
            self.store.add_metrics(records)

    # --- commands --------------------------------------------------------------------------

    def poke(self) -> None:
        """A run was queued or a slot freed: start what can start now."""
        self._wake.set()

    def stop(self, run_id: str) -> RunPublic | None:
        with self._claim:
            run = self.store.get_run(run_id)
            if run is None or run.status.finished:
                return run
            tp = self._procs.get(run_id)
            if tp is None:  # still queued, or fed by the user's own process (kind sdk)
                why = "stop requested" if run.kind is RunKind.sdk else "stopped before it started"
                updated = self.store.set_status(run_id, RunStatus.stopped, why)
                if updated:
                    self.notify(updated)
                return updated
        if tp.stop_requested_at is None:
            tp.stop_requested_at = time.monotonic()
            tp.handle.terminate()
        return run

    def report(self, run_id: str, kind: str, payload: dict[str, Any]) -> None:
        """The trainer's own word on how it ended (`finished` / `failed` message).

        For our trainers it is read when the process exits; a run of kind sdk has no process
        to wait for, so its word ends it now.
        """
        if run_id in self._procs:
            self._reports.setdefault(run_id, {})[kind] = payload
            return
        run = self.store.get_run(run_id)
        if run is None or run.status.finished:
            return  # its end is recorded already: kept, the word would never be read
        if run.kind is not RunKind.sdk:
            # A trainer a restarted backend has not re-attached yet: read when it is reaped.
            self._reports.setdefault(run_id, {})[kind] = payload
            return
        if kind == "failed":
            status, reason = RunStatus.failed, str(payload.get("reason") or "failed")
        elif payload.get("status") == "stopped":
            status, reason = RunStatus.stopped, str(payload.get("reason") or "stopped")
        else:
            status, reason = RunStatus.completed, str(payload.get("reason") or "finished")
        updated = self.store.set_status(run_id, status, reason)
        if updated:
            self.notify(updated)

    @property
    def active(self) -> int:
        return len(self._procs)

    # --- the loop --------------------------------------------------------------------------

    async def _monitor(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._tick)
            except Exception:  # the loop must outlive any single bad run
                logger.exception("supervisor tick failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            except TimeoutError:
                pass
            self._wake.clear()

    def _tick(self) -> None:
        self._reap()
        self._escalate_stops()
        self._fill_slots()
        if self.on_tick is not None:
            self.on_tick()

    def _fill_slots(self) -> None:
        # A tick already running when shutdown cancels the monitor must not start a queued
        # run: nothing would signal it, and it would end killed instead of staying queued.
        if self._shutting_down:
            return
        # User runs and probes have slots of their own: a probe never takes a user's slot.
        running = [tp.kind for tp in self._procs.values()]
        free = {
            RunKind.run: self.settings.max_runs - running.count(RunKind.run),
            RunKind.probe: self.settings.max_probes - running.count(RunKind.probe),
        }
        if max(free.values()) <= 0:
            return
        queued = sorted(self.store.runs_in_status(RunStatus.queued), key=lambda r: r.created_at)
        for run in queued:
            if free[run.kind] <= 0:
                continue
            with self._claim:
                current = self.store.get_run(run.id)
                if current is not None and current.status == RunStatus.queued:
                    self._spawn(current)
                    free[run.kind] -= 1

    def _spawn(self, run: RunPublic) -> None:
        run_dir = self.runs_dir / run.id
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            request = run_dir / REQUEST_FILE
            # The whole validated config travels in a file: nothing user-typed on argv.
            request.write_text(json.dumps(run.config, indent=2), "utf-8")
            args = [
                "--preset", run.preset,
                "--config", str(request),
                "--run-id", run.id,
                "--runs-dir", str(self.runs_dir),
                "--backend", self.settings.trainer_ingest_url,
                "--quiet",
            ]
            # Absolute paths: the trainer starts in its run folder, not ours.
            args += trainer_file_args(self.settings, run.config)
            env = {"PYTHONUNBUFFERED": "1"}
            probe = run.kind is RunKind.probe
            if probe:
                # One core's worth at most, and only what user runs leave idle.
                env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            token = self.store.get_ingest_token(run.id)
            if token:
                env["CAUSALWATCH_INGEST_TOKEN"] = token
            handle = self.executor.launch(Launch(
                run_id=run.id, kind=run.kind, run_dir=run_dir, trainer_args=args, env=env,
                nice=self.settings.probe_nice if probe else None,
                num_gpus=1 if run.config.get("device") == "cuda" else 0,
            ))
        except (OSError, DatasetError, LaunchError) as err:
            updated = self.store.set_status(run.id, RunStatus.failed, f"could not start: {err}")
            if updated:
                self.notify(updated)
            return
        self._procs[run.id] = TrainerProcess(run.id, handle, kind=run.kind)
        updated = self.store.set_status(run.id, RunStatus.running, None, pid=handle.pid)
        logger.info("started trainer for %s (%s, pid %s)", run.id, self.executor.name, handle.pid)
        if updated:
            self.notify(updated)

    def _escalate_stops(self) -> None:
        now = time.monotonic()
        limit = self.settings.max_run_seconds
        for tp in self._procs.values():
            if limit is not None and tp.stop_requested_at is None and now - tp.started_at > limit:
                logger.warning("%s ran longer than max_run_seconds (%g s); stopping it",
                               tp.run_id, limit)
                tp.stop_requested_at = now
                tp.stop_reason = f"ran longer than max_run_seconds ({limit:g} s)"
                tp.handle.terminate()
            if (
                tp.stop_requested_at is not None
                and not tp.killed
                and now - tp.stop_requested_at > self.settings.stop_timeout
            ):
                logger.warning("trainer of %s ignored SIGTERM; killing it", tp.run_id)
                tp.handle.kill()
                tp.killed = True

    def _reap(self) -> None:
        for run_id, tp in list(self._procs.items()):
            ended = tp.handle.poll()
            if ended is None:
                continue
            del self._procs[run_id]
            tp.handle.release()
            if tp.reattached:
                # Epochs it wrote while no backend listened and never got to resend.
                self._import_metrics_file(run_id)
            status, reason = self._outcome(tp, ended)
            updated = self.store.set_status(run_id, status, reason)
            first_line = reason.splitlines()[0]
            logger.info("trainer of %s ended: %s (%s)", run_id, status.value, first_line)
            if updated:
                self.notify(updated)
            self._wake.set()

    def _trainer_word(self, run_id: str) -> Outcome | None:
        """How the trainer says its run ended: its `finished` / `failed` message, else the
        outcome file it wrote (the message may have been lost with a backend restart)."""
        reports = self._reports.pop(run_id, {})
        if "failed" in reports:
            return Outcome(status="failed", reason=str(reports["failed"].get("reason") or ""))
        if "finished" in reports:
            summary = reports["finished"]
            status = summary.get("status")
            return Outcome(
                status=status if status in OUTCOME_STATUS and status != "failed" else "completed",
                reason=str(summary.get("reason") or "trainer exited normally"),
            )
        return read_outcome(self.runs_dir / run_id)

    def _outcome(self, tp: TrainerProcess, ended: Ended) -> tuple[RunStatus, str]:
        code = ended.code
        said = self._trainer_word(tp.run_id)
        if tp.stop_requested_at is not None:
            how = "killed after the stop timeout" if tp.killed else "stopped"
            if tp.kind is RunKind.probe and self._shutting_down:
                how = "killed at once, as probes are"
            why = tp.stop_reason or (
                "backend shut down" if self._shutting_down else "stop requested"
            )
            return RunStatus.stopped, f"{why}; trainer {how}"
        if said is None and code == 0:
            return RunStatus.completed, "trainer exited normally"
        if said is not None and said.status != "failed" and code in (0, -1):
            return OUTCOME_STATUS[said.status], said.reason
        failed = said.reason if said is not None and said.status == "failed" else None
        reason = failed or ended.reason or describe_exit(code)
        lines = tail(self.runs_dir / tp.run_id / OUTPUT_FILE, self.settings.log_tail_lines)
        if not lines:
            lines = tail(self.runs_dir / tp.run_id / LOG_FILE, self.settings.log_tail_lines)
        if lines:
            reason += "\nlast lines of the trainer's output:\n" + "\n".join(lines)
        return RunStatus.failed, reason
