"""Trainer messages in: check, store once, evaluate red flags, publish, answer.

Each message type takes one path. An epoch record is checked, queued for the shared writer's
next commit (backend/ingest_writer.py), and after its commit — in arrival order within its
run — added to the run's rule window (backend/rule_window.py), published to browsers and
judged by the rules; its ack follows the commit, so an acked epoch is on disk. Every other
message is handled whole under its run's lock.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from backend import rules
from backend.db import StoreError
from backend.hub import Hub
from backend.ingest_writer import IngestWriter
from backend.json_safe import json_safe
from backend.rule_window import RuleWindow
from backend.schemas import AlertPublic, RunKind, RunPublic
from backend.store import Store
from trainer.config import TrainConfig
from trainer.protocol import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    EpochRecord,
    GraphSnapshot,
    PartialEpochRecord,
    StartedData,
)

logger = logging.getLogger("causalwatch.ingest")

# The protocol's message types by name. Every one has its path here: a type added, renamed
# or dropped in trainer/protocol.py fails this import instead of being refused at run time.
HANDLED = STARTED, EPOCH, GRAPH, FINISHED, FAILED = (
    "started", "epoch", "graph", "finished", "failed"
)
if set(HANDLED) != set(MESSAGE_TYPES):
    raise ImportError(f"ingest handles {HANDLED}; trainer.protocol defines {MESSAGE_TYPES}")


class MessageError(ValueError):
    """A message we refuse; the detail goes back to the trainer in an error frame."""


class StorageUnavailable(RuntimeError):
    """The database could not take a valid record now (locked, down): neither ack nor refuse.

    The connection is closed instead, so the trainer reconnects with backoff and resends
    everything unacknowledged: a busy database delays records, it never drops them.
    """


@dataclass
class RunState:
    """What rule evaluation needs of a run, kept in memory after its first message."""

    config: dict[str, Any]
    window: RuleWindow
    fired: set[str]
    data: dict[str, Any] | None = None
    failure: str | None = None
    closed: bool = False  # its trainer said finished/failed: nothing more is taken
    # The run's config as ours, validated at its first graph, not again for every graph.
    plan: TrainConfig | None = None


Handler = Callable[[RunPublic, RunState, dict[str, Any]], Awaitable[None]]
# A record queued for the commit and the future its commit resolves (IngestWriter.enqueue).
Admitted = tuple[dict[str, Any], asyncio.Future[bool]]


class Ingest:
    """Handles one decoded message of one run; `begin` gives the frame to answer with."""

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
        self.writer = writer
        self.hub = hub
        self.on_report = on_report
        self.on_alert = on_alert
        # None while the runs directory has room; otherwise why not (min_free_mb).
        self.has_room = has_room
        self._states: dict[str, RunState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._others_in_flight: dict[str, int] = {}  # non-epoch messages being handled
        self._handlers: dict[str, Handler] = {
            STARTED: self._started, GRAPH: self._graph, FINISHED: self._ended, FAILED: self._ended,
        }

    def begin(self, run: RunPublic, message: Any) -> asyncio.Future[dict[str, Any]]:
        """Start handling one message; the future resolves to its ack or error frame, or
        fails with StorageUnavailable."""
        seq = message.get("seq") if isinstance(message, dict) else None
        try:
            msg_type = _check_envelope(run.id, message)
        except MessageError as err:
            return answered(_refusal(run, seq, err))
        if msg_type == EPOCH:
            return self._begin_epoch(run, seq, message)
        handled = asyncio.ensure_future(self._reply(run, seq, self._other(run, message)))
        self._others_in_flight[run.id] = self._others_in_flight.get(run.id, 0) + 1
        handled.add_done_callback(lambda _: self._other_done(run.id))
        return handled

    def _begin_epoch(
        self, run: RunPublic, seq: int, message: dict[str, Any]
    ) -> asyncio.Future[dict[str, Any]]:
        """Queue the record for the shared commit at once when nothing of its run is ahead
        of it, so a connection has many records in flight and one commit covers them all.

        Otherwise — the run's state is not loaded yet (whether it has ended is not known),
        or another message of the run is being handled (a record sent after `finished`
        must meet a closed run) — the same checks run once the record's turn comes.
        """
        admitted: Admitted | None = None
        state = self._states.get(run.id)
        if state is not None and not self._others_in_flight.get(run.id):
            try:
                admitted = self._admit(run, state, message)
            except MessageError as err:
                return answered(_refusal(run, seq, err))
            except StorageUnavailable as err:
                return _failed(err)
        return asyncio.ensure_future(self._reply(run, seq, self._epoch(run, message, admitted)))

    def _admit(self, run: RunPublic, state: RunState, message: dict[str, Any]) -> Admitted:
        if state.closed:
            raise _finished(run)
        record = self._validate_record(run, message.get("record"))
        self._check_room()
        return record, self.writer.enqueue(record)

    @staticmethod
    def _validate_record(run: RunPublic, raw: Any) -> dict[str, Any]:
        """An epoch message's record as stored, or the MessageError refusing it."""
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

    async def _epoch(
        self, run: RunPublic, message: dict[str, Any], admitted: Admitted | None
    ) -> None:
        async with self._lock(run.id):
            state = await self._state(run)
            record, committed = admitted or self._admit(run, state, message)
            try:
                inserted = await committed
            except StoreError as err:
                raise _store_failure(err, "record ") from None
            except Exception as err:
                raise StorageUnavailable(type(err).__name__) from None
            if not inserted:
                await self._check_resend(run, record)
                return
            # The window may have been loaded after this commit and hold the record already.
            state.window.add(record)
            self.hub.publish({"type": "metric", "run_id": run.id, "record": record})
            await self._evaluate(run, state)

    async def _check_resend(self, run: RunPublic, record: dict[str, Any]) -> None:
        """A resend is acked again; a different record for a stored epoch is a forgery or a
        bug, and the first one stays: refused, and said so in the log."""
        stored = await asyncio.to_thread(self.store.get_metric, run.id, record["epoch"])
        if stored is not None and not _same_record(stored, record):
            logger.warning(
                "refused a different record for stored epoch %s of %s", record["epoch"], run.id
            )
            raise MessageError(
                f"record.epoch: epoch {record['epoch']} is already stored with other "
                "values; a stored epoch is never replaced"
            )

    async def _other(self, run: RunPublic, message: dict[str, Any]) -> None:
        async with self._lock(run.id):
            state = await self._state(run)
            if state.closed:
                raise _finished(run)
            await self._handlers[message["type"]](run, state, message)

    def _other_done(self, run_id: str) -> None:
        left = self._others_in_flight.pop(run_id, 1) - 1
        if left > 0:
            self._others_in_flight[run_id] = left

    @staticmethod
    async def _reply(
        run: RunPublic, seq: int, work: Coroutine[Any, Any, None]
    ) -> dict[str, Any]:
        """The frame answering a message once `work` (its handling) is done."""
        try:
            try:
                await work
            except StoreError as err:  # the rules' alert writes, the started/graph writes
                raise _store_failure(err) from None
        except MessageError as err:
            return _refusal(run, seq, err)
        return {"type": "ack", "seq": seq}

    def _lock(self, run_id: str) -> asyncio.Lock:
        return self._locks.setdefault(run_id, asyncio.Lock())

    def _check_room(self) -> None:
        full = self.has_room()
        if full is not None:
            raise StorageUnavailable(full)

    async def _state(self, run: RunPublic) -> RunState:
        state = self._states.get(run.id)
        if state is None:
            history = await asyncio.to_thread(self.store.get_metrics, run.id)
            fired = await asyncio.to_thread(self.store.fired_rules, run.id)
            current = await asyncio.to_thread(self.store.get_run, run.id)
            state = RunState(rules.config_of(run.config), RuleWindow(history), fired, run.data)
            state.closed = current is None or current.status.finished
            self._states[run.id] = state
        return state

    async def _started(self, run: RunPublic, state: RunState, message: dict[str, Any]) -> None:
        data = _validate_started(message.get("data"))
        state.data = data
        await asyncio.to_thread(self.store.set_run_data, run.id, data)
        await self._evaluate(run, state)

    async def _ended(self, run: RunPublic, state: RunState, message: dict[str, Any]) -> None:
        summary = message.get("summary") if isinstance(message.get("summary"), dict) else {}
        if message["type"] == FAILED:
            reason = message.get("reason")
            if not isinstance(reason, str):
                raise MessageError("reason: the failed message needs a reason string")
            state.failure = reason
            self.on_report(run.id, FAILED, {"reason": reason, **summary})
            await self._evaluate(run, state)
        else:
            self.on_report(run.id, FINISHED, summary)
        await asyncio.to_thread(self.store.set_summary, run.id, summary)
        state.closed = True

    async def _graph(self, run: RunPublic, state: RunState, message: dict[str, Any]) -> None:
        self._check_room()
        try:
            graph = GraphSnapshot.model_validate(
                {"epoch": message.get("epoch"), "probabilities": message.get("probabilities")}
            )
        except ValidationError as err:
            raise _refusal_of(err, whole="graph") from None
        # Snapshots come at evaluation epochs of the run's plan, one matrix over its
        # variables: anything else would only grow the database. A loop on its own config
        # (RunPublic.own_config) has no plan of ours: it evaluates when it chooses, within
        # its length.
        if run.own_config:
            if run.epochs_total and graph.epoch > run.epochs_total:
                raise MessageError(
                    f"epoch: {graph.epoch} is beyond the run's {run.epochs_total} epochs"
                )
        else:
            plan = state.plan = state.plan or TrainConfig.model_validate(run.config)
            if not plan.is_eval_epoch(graph.epoch):
                raise MessageError(
                    f"epoch: {graph.epoch} is not an evaluation epoch of this run (every "
                    f"{plan.eval_every} up to {plan.epochs_to_run}, and the last)"
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
            config=state.config, history=state.window.records, data=state.data,
            failure=state.failure,
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
                evidence=json_safe(finding.evidence),
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


def error_frame(seq: Any, detail: str) -> dict[str, Any]:
    """The answer refusing a message (`seq` None when the frame had none to read)."""
    return {"type": "error", "seq": seq, "detail": detail}


def answered(reply: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
    """A reply known at once, in the form of one still being worked out."""
    future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    future.set_result(reply)
    return future


def _failed(err: Exception) -> asyncio.Future[dict[str, Any]]:
    future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    future.set_exception(err)
    return future


def _refusal(run: RunPublic, seq: Any, err: MessageError) -> dict[str, Any]:
    logger.warning("refused message seq=%s of %s: %s", seq, run.id, err)
    return error_frame(seq, str(err))


def _store_failure(err: StoreError, subject: str = "") -> MessageError | StorageUnavailable:
    """A database error as ingest answers it: a record it refuses (integrity) can never be
    stored, so it is refused; anything else (busy, down) passes, so the trainer resends."""
    if err.code == "integrity":
        return MessageError(f"{subject}refused by the database: {err.message}")
    return StorageUnavailable(err.message)


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
    if msg_type not in MESSAGE_TYPES:
        raise MessageError(f"type: unknown message type {msg_type!r}")
    return str(msg_type)


def _validate_started(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise MessageError("data: the started message needs a data object")
    try:
        data = StartedData.model_validate(raw)
    except ValidationError as err:
        raise _refusal_of(err, prefix="data.") from None
    # As sent (no defaults added), with the checked fields in their validated types.
    return data.model_dump(exclude_unset=True)


def _refusal_of(err: ValidationError, *, prefix: str = "", whole: str = "") -> MessageError:
    """The first validation error, named by its field (`whole` when it is the object)."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or whole
    return MessageError(f"{prefix}{loc}: {first['msg']}")


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
