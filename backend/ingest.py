"""Trainer messages in: validate, store once (batched commits), evaluate red flags, publish.

Every acknowledgement follows the commit of its record: an acked epoch is on disk. Records
from all connected trainers share one writer task, which commits whatever arrived while
the previous commit ran in one transaction — SQLite has a single writer anyway, and one
commit per batch instead of per record is what makes thousands of records/s possible.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from backend import rules
from backend.db import StoreError
from backend.hub import Hub
from backend.schemas import SDK_PRESET, AlertPublic, RunKind, RunPublic
from backend.store import Store
from trainer.config import TrainConfig
from trainer.protocol import (
    PROTOCOL_VERSION,
    EpochRecord,
    GraphSnapshot,
    PartialEpochRecord,
    StartedData,
)

logger = logging.getLogger("causalwatch.ingest")

MAX_BATCH = 500


class MessageError(ValueError):
    """A message we refuse; the detail goes back to the trainer in an error frame."""


class _NotLoaded(Exception):
    """The run's state is not in memory yet (see Ingest._check_open)."""


class StorageUnavailable(RuntimeError):
    """The database could not take a valid record now (locked, down): neither ack nor refuse.

    The connection is closed instead, so the trainer reconnects with backoff and resends
    everything unacknowledged: a busy database delays records, it never drops them.
    """


@dataclass
class RunState:
    """What rule evaluation needs of a run, kept in memory after its first message."""

    config: dict[str, Any]
    history: list[dict[str, Any]]
    fired: set[str]
    data: dict[str, Any] | None = None
    failure: str | None = None
    epochs: set[int] = field(default_factory=set)
    closed: bool = False  # its trainer said finished/failed: nothing more is taken


class IngestWriter:
    """One task committing queued records in batches; `submit` resolves after the commit."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[bool]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-writer")

    def enqueue(self, record: dict[str, Any]) -> asyncio.Future[bool]:
        """Queue a record for the next commit; the future says True if stored now, False if
        it was already stored (a resend). Never blocks: callers bound what they have in flight.
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((record, future))
        return future

    async def _run(self) -> None:
        while True:
            waiting = [await self._queue.get()]
            while not self._queue.empty():
                waiting.append(self._queue.get_nowait())
            # Take runs in turn so one trainer's backlog cannot delay everyone else's records.
            for batch in _fair_batches(waiting, MAX_BATCH):
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[dict[str, Any], asyncio.Future[bool]]]) -> None:
        try:
            inserted = await asyncio.to_thread(self.store.add_metrics, [r for r, _ in batch])
        except StoreError as err:
            if err.code == "integrity" and len(batch) > 1:
                # One bad record must not hold the others hostage: commit one by one.
                for item in batch:
                    await self._commit([item])
                return
            logger.warning("storing %d records failed: %s", len(batch), err)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(err)
            return
        except Exception as err:  # resolve every waiter, whatever happened
            logger.exception("storing %d records failed", len(batch))
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(err)
            return
        for (_, fut), ok in zip(batch, inserted, strict=True):
            if not fut.done():
                fut.set_result(ok)

    async def close(self) -> None:
        """Let queued records commit, then stop."""
        for _ in range(200):
            if self._queue.empty():
                break
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()


class Ingest:
    """Handles one decoded message of one run; returns the frame to answer with."""

    def __init__(
        self,
        store: Store,
        writer: IngestWriter,
        hub: Hub,
        on_report: Callable[[str, str, dict[str, Any]], None],
        *,
        on_alert: Callable[[RunPublic, AlertPublic], None] | None = None,
        has_room: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.store = store
        # None while the runs directory has room; otherwise why not (min_free_mb).
        self.has_room = has_room
        self.writer = writer
        self.hub = hub
        self.on_report = on_report
        self.on_alert = on_alert
        self._states: dict[str, RunState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._others_in_flight: dict[str, int] = {}  # non-epoch messages being handled

    def begin(self, run: RunPublic, message: Any) -> asyncio.Future[dict[str, Any]]:
        """Start handling one message; the future resolves to its ack or error frame.

        Epoch records are validated now and queued for the shared commit at once, so a
        connection can have many records in flight and one commit covers them all; the work
        after the commit (history, live event, rules) runs in arrival order per run. While
        another message of the run is being handled (`started`, `finished`, ...), records
        queue behind it instead: a record sent after `finished` must meet a closed run.
        """
        is_epoch = isinstance(message, dict) and message.get("type") == "epoch"
        if is_epoch and not self._others_in_flight.get(run.id):
            seq = message.get("seq")
            try:
                self._check_envelope(run.id, message)
                self._check_open(run)
                record = self._validate_record(run, message.get("record"))
            except MessageError as err:
                return _done(self._refusal(run, seq, err))
            except _NotLoaded:
                return asyncio.ensure_future(self.handle(run, message))
            full = self.has_room()
            if full is not None:
                return _failed(StorageUnavailable(full))
            committed = self.writer.enqueue(record)
            return asyncio.ensure_future(self._after_commit(run, seq, record, committed))
        handled = asyncio.ensure_future(self.handle(run, message))
        if not is_epoch:
            self._others_in_flight[run.id] = self._others_in_flight.get(run.id, 0) + 1
            handled.add_done_callback(lambda _: self._other_done(run.id))
        return handled

    def _other_done(self, run_id: str) -> None:
        left = self._others_in_flight.pop(run_id, 1) - 1
        if left > 0:
            self._others_in_flight[run_id] = left

    @staticmethod
    def _refusal(run: RunPublic, seq: Any, err: MessageError) -> dict[str, Any]:
        logger.warning("refused message seq=%s of %s: %s", seq, run.id, err)
        return {"type": "error", "seq": seq, "detail": str(err)}

    async def handle(self, run: RunPublic, message: Any) -> dict[str, Any]:
        seq = message.get("seq") if isinstance(message, dict) else None
        try:
            msg_type = self._check_envelope(run.id, message)
            async with self._locks.setdefault(run.id, asyncio.Lock()):
                try:
                    await self._dispatch(run, msg_type, message)
                except StoreError as err:
                    if err.code == "integrity":
                        raise MessageError(f"refused by the database: {err.message}") from None
                    raise StorageUnavailable(err.message) from None
        except MessageError as err:
            return self._refusal(run, seq, err)
        return {"type": "ack", "seq": seq}

    def _check_open(self, run: RunPublic) -> None:
        state = self._states.get(run.id)
        if state is None:
            # Whether the run has ended is known once its state is loaded: take the slow
            # path, which loads it before storing anything.
            raise _NotLoaded
        if state.closed:
            raise _finished(run)

    @staticmethod
    def _check_envelope(run_id: str, message: Any) -> str:
        if not isinstance(message, dict):
            raise MessageError("a message must be a JSON object")
        if message.get("v") != PROTOCOL_VERSION:
            raise MessageError(f"v: unsupported protocol version {message.get('v')!r}")
        seq = message.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise MessageError(f"seq: must be a non-negative integer, got {seq!r}")
        if message.get("run_id") != run_id:
            raise MessageError(f"run_id: {message.get('run_id')!r} does not match the URL")
        msg_type = message.get("type")
        if msg_type not in ("started", "epoch", "graph", "alert", "finished", "failed"):
            raise MessageError(f"type: unknown message type {msg_type!r}")
        return str(msg_type)

    async def _state(self, run: RunPublic) -> RunState:
        state = self._states.get(run.id)
        if state is None:
            history = await asyncio.to_thread(self.store.get_metrics, run.id)
            fired = await asyncio.to_thread(self.store.fired_rules, run.id)
            current = await asyncio.to_thread(self.store.get_run, run.id)
            state = RunState(rules.config_of(run.config), _slimmed(history), fired, run.data)
            state.epochs = {r["epoch"] for r in history}
            state.closed = current is None or current.status.finished
            self._states[run.id] = state
        return state

    async def _dispatch(self, run: RunPublic, msg_type: str, message: dict[str, Any]) -> None:
        state = await self._state(run)
        if state.closed:
            raise _finished(run)
        if msg_type in ("epoch", "graph"):
            full = self.has_room()
            if full is not None:
                raise StorageUnavailable(full)
        if msg_type == "epoch":  # reached only through handle(); begin() pipelines epochs
            record = self._validate_record(run, message.get("record"))
            await self._record_committed(run, state, record, self.writer.enqueue(record))
        elif msg_type == "graph":
            await self._graph(run, state, message)
        elif msg_type == "started":
            data = self._validate_started(message.get("data"))
            state.data = data
            await asyncio.to_thread(self.store.set_run_data, run.id, data)
            await self._evaluate(run, state)
        elif msg_type in ("finished", "failed"):
            summary = message.get("summary") if isinstance(message.get("summary"), dict) else {}
            if msg_type == "failed":
                reason = message.get("reason")
                if not isinstance(reason, str):
                    raise MessageError("reason: the failed message needs a reason string")
                state.failure = reason
                self.on_report(run.id, "failed", {"reason": reason, **summary})
                await self._evaluate(run, state)
            else:
                self.on_report(run.id, "finished", summary)
            await asyncio.to_thread(self.store.set_summary, run.id, summary)
            state.closed = True
        # "alert" messages are reserved for trainer-side checks; accepted and ignored.

    @staticmethod
    def _validate_started(raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise MessageError("data: the started message needs a data object")
        try:
            data = StartedData.model_validate(raw)
        except ValidationError as err:
            raise _refusal_of(err, prefix="data.") from None
        # As sent (no defaults added), with the checked fields in their validated types.
        return data.model_dump(exclude_unset=True)

    @staticmethod
    def _validate_record(run: RunPublic, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise MessageError("record: an epoch message needs a record object")
        # Our trainer measures every field; the caller's own loop (kind sdk) what it can.
        model = PartialEpochRecord if run.kind is RunKind.sdk else EpochRecord
        try:
            record = model.model_validate(raw).model_dump()
        except ValidationError as err:
            raise _refusal_of(err, prefix="record.", whole="record") from None
        if record["run_id"] != run.id:
            raise MessageError("record.run_id: does not match the URL")
        # An SDK run of unknown length has epochs_total 0.
        if run.epochs_total and record["epoch"] > run.epochs_total:
            raise MessageError(
                f"record.epoch: {record['epoch']} is beyond the run's {run.epochs_total} epochs"
            )
        return record

    async def _after_commit(
        self, run: RunPublic, seq: Any, record: dict[str, Any], committed: asyncio.Future[bool]
    ) -> dict[str, Any]:
        try:
            async with self._locks.setdefault(run.id, asyncio.Lock()):
                state = await self._state(run)
                try:
                    await self._record_committed(run, state, record, committed)
                except StoreError as err:  # from the rules' alert writes
                    if err.code == "integrity":
                        raise MessageError(f"refused by the database: {err.message}") from None
                    raise StorageUnavailable(err.message) from None
        except MessageError as err:
            return self._refusal(run, seq, err)
        return {"type": "ack", "seq": seq}

    async def _record_committed(
        self,
        run: RunPublic,
        state: RunState,
        record: dict[str, Any],
        committed: asyncio.Future[bool],
    ) -> None:
        try:
            inserted = await committed
        except StoreError as err:
            if err.code == "integrity":
                raise MessageError(f"record refused by the database: {err.message}") from None
            raise StorageUnavailable(err.message) from None
        except Exception as err:
            raise StorageUnavailable(type(err).__name__) from None
        if not inserted:
            # A resend is acked again; a different record for a stored epoch is a forgery or
            # a bug, and the first one stays: refused, and said so in the log.
            stored = await asyncio.to_thread(self.store.get_metric, run.id, record["epoch"])
            if stored is not None and not _same_record(stored, record):
                logger.warning(
                    "refused a different record for stored epoch %s of %s",
                    record["epoch"], run.id,
                )
                raise MessageError(
                    f"record.epoch: epoch {record['epoch']} is already stored with other "
                    "values; a stored epoch is never replaced"
                )
            return
        # The state may have been loaded after this commit and hold the record already.
        if record["epoch"] not in state.epochs:
            state.epochs.add(record["epoch"])
            _insert_sorted(state.history, record)
        self.hub.publish({"type": "metric", "run_id": run.id, "record": record})
        await self._evaluate(run, state)

    async def _graph(self, run: RunPublic, state: RunState, message: dict[str, Any]) -> None:
        try:
            graph = GraphSnapshot.model_validate(
                {"epoch": message.get("epoch"), "probabilities": message.get("probabilities")}
            )
        except ValidationError as err:
            raise _refusal_of(err, whole="graph") from None
        # Snapshots come at evaluation epochs of the run's plan, one matrix over its
        # variables: anything else would only grow the database. A loop on its own config
        # (SDK_PRESET) has no plan of ours: it evaluates when it chooses, within its length.
        if run.preset == SDK_PRESET:
            if run.epochs_total and graph.epoch > run.epochs_total:
                raise MessageError(
                    f"epoch: {graph.epoch} is beyond the run's {run.epochs_total} epochs"
                )
        else:
            config = TrainConfig.model_validate(run.config)
            if not config.is_eval_epoch(graph.epoch):
                raise MessageError(
                    f"epoch: {graph.epoch} is not an evaluation epoch of this run (every "
                    f"{config.eval_every} up to {config.epochs_to_run}, and the last)"
                )
        variables = (state.data or {}).get("variables")
        if variables and len(graph.probabilities) != len(variables):
            raise MessageError(
                f"probabilities: {len(graph.probabilities)} × {len(graph.probabilities)} for "
                f"a run over {len(variables)} variables"
            )
        stored = await asyncio.to_thread(
            self.store.add_graph, run_id=run.id, epoch=graph.epoch,
            probabilities=graph.probabilities,
        )
        if stored:
            self.hub.publish({"type": "graph", "run_id": run.id, **graph.model_dump()})

    async def _evaluate(self, run: RunPublic, state: RunState) -> None:
        ctx = rules.RunContext(
            config=state.config, history=state.history, data=state.data, failure=state.failure
        )
        for finding in rules.evaluate(ctx, state.fired):
            state.fired.add(finding.rule)
            alert = await asyncio.to_thread(
                self.store.add_alert,
                run_id=run.id,
                rule=finding.rule,
                severity=str(finding.severity),
                epoch=finding.epoch,
                message=finding.message,
                cause=finding.cause,
                suggested_changes=finding.suggested_changes,
                evidence=_json_safe(finding.evidence),
                candidates=[c.as_dict() for c in finding.candidates],
            )
            if alert is not None:
                self.hub.publish(
                    {"type": "alert", "run_id": run.id, "alert": alert.model_dump(mode="json")}
                )
                if self.on_alert is not None:
                    self.on_alert(run, alert)

    @property
    def runs_in_memory(self) -> int:
        return len(self._states)

    def forget(self, run_id: str) -> None:
        self._states.pop(run_id, None)
        self._locks.pop(run_id, None)


def _refusal_of(err: ValidationError, *, prefix: str = "", whole: str = "") -> MessageError:
    """The first validation error, named by its field (`whole` when it is the object)."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or whole
    return MessageError(f"{prefix}{loc}: {first['msg']}")


def _insert_sorted(history: list[dict[str, Any]], record: dict[str, Any]) -> None:
    """Keep history in epoch order even when a resend arrives out of order."""
    if not history or history[-1]["epoch"] < record["epoch"]:
        history.append(record)
    else:
        index = next(i for i, r in enumerate(history) if r["epoch"] > record["epoch"])
        history.insert(index, record)
    if len(history) > rules.FULL_HISTORY:
        _slim(history, len(history) - rules.FULL_HISTORY - 1)


def _slim(history: list[dict[str, Any]], index: int) -> None:
    """Cut one record to the fields rules read that far back: ~30 bytes instead of ~2 KB."""
    record = history[index]
    if len(record) > len(rules.HISTORY_KEPT_FIELDS):
        history[index] = {k: record.get(k) for k in rules.HISTORY_KEPT_FIELDS}


def _slimmed(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for index in range(len(history) - rules.FULL_HISTORY):
        _slim(history, index)
    return history


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _finished(run: RunPublic) -> MessageError:
    return MessageError(f"run_id: run {run.id!r} has finished; it takes no more messages")


def _same_record(stored: dict[str, Any], record: dict[str, Any]) -> bool:
    """Equal field by field; floats up to the database's round trip."""
    for name, value in stored.items():
        other = record.get(name)
        if isinstance(value, float) and isinstance(other, float | int):
            if not math.isclose(value, other, rel_tol=1e-12, abs_tol=1e-300):
                return False
        elif value != other:
            return False
    return True


def _failed(err: Exception) -> asyncio.Future[dict[str, Any]]:
    future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    future.set_exception(err)
    return future


def _done(reply: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
    future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    future.set_result(reply)
    return future


def _fair_batches(
    items: list[tuple[dict[str, Any], asyncio.Future[bool]]], size: int
) -> list[list[tuple[dict[str, Any], asyncio.Future[bool]]]]:
    """Batches of at most `size`, interleaving runs round-robin (order kept within a run)."""
    per_run: dict[str, list[tuple[dict[str, Any], asyncio.Future[bool]]]] = {}
    for item in items:
        per_run.setdefault(item[0]["run_id"], []).append(item)
    interleaved = []
    queues = list(per_run.values())
    depth = max(len(q) for q in queues)
    for i in range(depth):
        interleaved.extend(q[i] for q in queues if i < len(q))
    return [interleaved[i : i + size] for i in range(0, len(interleaved), size)]
