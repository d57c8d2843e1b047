"""A run of the user's own training loop: logged values → rows → epoch records → the server.

Rows follow W&B's `log` semantics. Calls with the same `step` merge into one row; a new step,
`commit=True`, or `finish()` completes the row and sends it. A call without a step is a row
of its own, sent at once, unless `commit=False` keeps the row open for more calls. Row n is
the record of epoch n (1-based) and carries the user's step as its `step`.

Every message goes to the run's local folder first (causalwatch.local), then, for an online
run, to the trainer's own emitter (acks, reconnects, resends): nothing here waits on the
network after `init`, and nothing raises because the server is slow or gone.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, get_args

import httpx

from causalwatch import InitOptions, Mode, Outcome
from causalwatch import fields as F
from causalwatch.local import Journal, RunInfo, mark_synced, runs_dir
from causalwatch.process import MAX_REASON_CHARS, notice, one_line, process
from causalwatch.reference import load_reference
from causalwatch.server import ServerError, admin_token, create_run, server_url
from trainer.protocol import MAX_CUSTOM_KEYS, MAX_INT, NO_REFERENCE_KIND, make_message

logger = logging.getLogger("causalwatch.sdk")

FieldSource = Callable[[int], Mapping[str, Any]]
# finish() waits this long for the server's acks before leaving the rest to `causalwatch sync`.
FINISH_WAIT_SECONDS = 5.0
RECONNECT_MAX_SECONDS = 2.0


def start_run(name: str | None, config: Mapping[str, Any] | None, options: InitOptions) -> Run:
    """`causalwatch.init`: check the arguments, create the server run (or go offline)."""
    mode = options.get("mode", "auto")
    epochs = options.get("epochs")
    if mode not in get_args(Mode):
        raise ValueError(f"mode: must be one of {', '.join(map(repr, get_args(Mode)))}, "
                         f"got {mode!r}")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name: must be a string, got {type(name).__name__}")
    user_config = F.check_config(config)
    names = F.check_variables(options.get("variables"))
    if epochs is not None and (
        isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= MAX_INT
    ):
        raise ValueError(f"epochs: must be a whole number ≥ 1, got {epochs!r}")
    edges = load_reference(options.get("reference"), names)
    url = server_url(options.get("server"))
    root = runs_dir(options.get("dir"))

    run_id: str | None = None
    ingest_token: str | None = None
    if mode != "offline":
        try:
            run_id, ingest_token = create_run(
                url, name=name, config=user_config, epochs=epochs,
                token=admin_token(options.get("token")),
            )
        except httpx.HTTPError as err:
            if mode == "online":
                raise ConnectionError(
                    f"causalwatch.init: server {url} unreachable: {err}"
                ) from None
            notice(f"server {url} unreachable ({type(err).__name__}); this run is offline")
        except ServerError as err:
            if err.status in (400, 413, 422):
                raise ValueError(f"causalwatch.init: the server refused the run: {err.detail}") \
                    from None
            if mode == "online":
                raise ConnectionError(f"causalwatch.init: server {url}: {err}") from None
            notice(f"server {url} refused the run ({err}); this run is offline")
    offline = run_id is None
    if run_id is None:
        run_id = f"offline-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    folder = root / run_id
    folder.mkdir(parents=True, exist_ok=True)
    info = RunInfo(
        local_id=run_id,
        server=url,
        server_run_id=None if offline else run_id,
        ingest_token=ingest_token,
        name=name,
        epochs=epochs,
        pid=os.getpid(),
        # With pid: `causalwatch sync` refuses a run whose process is still writing it.
        extra={"host": socket.gethostname()},
    )
    info.write(folder)
    emitter = None
    if not offline:
        from trainer.emitter import Emitter  # websockets: loaded only once a run streams

        # A user watching a restarted backend expects the run back within seconds.
        emitter = Emitter(url, run_id, token=ingest_token, max_backoff=RECONNECT_MAX_SECONDS)
        emitter.start()
    run = Run(
        run_id=run_id, name=name, config=user_config, variables=names, reference=edges,
        epochs=epochs, folder=folder, server=None if offline else url, emitter=emitter,
    )
    process.install_hooks()
    process.add(run)
    return run


class Run:
    """One run. Build it with `causalwatch.init`; log with `log`, end with `finish`."""

    def __init__(
        self,
        *,
        run_id: str,
        name: str | None,
        config: dict[str, Any],
        variables: list[str] | None,
        reference: list[tuple[str, str]] | None,
        epochs: int | None,
        folder: Path,
        server: str | None,
        emitter: Any,
    ) -> None:
        self.id = run_id
        self.name = name
        self.config = config
        self.variables = variables
        self.reference = reference
        self.epochs = epochs
        self.folder = folder
        self.server = server  # None: offline, the run lives in `folder` until synced
        self._emitter = emitter
        self._journal: Journal | None = Journal(folder)
        self._seq = 0
        self._lock = threading.RLock()
        self._sources: list[FieldSource] = []
        self._finished = False
        self._warned: set[str] = set()
        self._started_wall = time.time()
        self._started = time.monotonic()
        self._last_row_at = self._started
        self._seconds_total = 0.0
        self._rows = 0
        self._last_step: int | None = None
        # The open row: the step it is for, and the user's own values so far.
        self._row_step: int | None = None
        self._row_fields: dict[str, Any] = {}
        self._row_custom: dict[str, float] = {}
        self._row_at = self._started
        self._row_wall = self._started_wall
        data: dict[str, Any] = {
            "name": _data_name(config),
            "reference_kind": "user" if reference is not None else NO_REFERENCE_KIND,
        }
        if variables is not None:
            data["variables"] = variables
        if reference is not None:
            data["reference_edges"] = [list(edge) for edge in reference]
        self._send("started", config=config, data=data)

    # -- what the user calls -------------------------------------------------------------------

    @property
    def offline(self) -> bool:
        return self.server is None

    @property
    def url(self) -> str | None:
        """The run in the API (None while offline)."""
        return None if self.server is None else f"{self.server}/api/runs/{self.id}"

    def log(
        self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        """Merge `data` into the row of `step` (see the module docstring for rows).

        Keys named like an EpochRecord field (docs/metrics.md) fill that field; any other key
        is your own, stored under `custom`. Raises ValueError naming a bad key or value.
        """
        record_fields, custom = F.split(data)
        if step is not None:
            step = F.check_step(step)
        with self._lock:
            if self._finished:
                self._warn_once("log-after-finish", "log() after finish() is ignored")
                return
            implicit = step is None
            self._advance(step)
            keys = len(self._row_custom.keys() | custom.keys())
            if keys > MAX_CUSTOM_KEYS:
                raise ValueError(
                    f"custom keys: at most {MAX_CUSTOM_KEYS} per row, this row would have {keys}"
                )
            self._row_fields.update(record_fields)
            self._row_custom.update(custom)
            self._row_at = time.monotonic()
            self._row_wall = time.time()
            if commit or (commit is None and implicit):
                self._complete_row()

    def log_graph(self, probabilities: Any, step: int | None = None) -> None:
        """Send the edge probabilities P (d × d, P[i][j] = edge i → j, in [0, 1]) for the
        current row's epoch (the next row's when none is open)."""
        matrix = F.check_matrix(probabilities, self.variables)
        if step is not None:
            step = F.check_step(step)
        with self._lock:
            if self._finished:
                self._warn_once("graph-after-finish", "log_graph() after finish() is ignored")
                return
            if step is not None:
                self._advance(step)
            self._send("graph", epoch=self._rows + 1, probabilities=matrix)

    @property
    def open_row(self) -> tuple[int, float] | None:
        """(step, monotonic time of the last `log` into it) of the row not sent yet, or None.

        A field source measuring per optimizer step (`cw.torch.watch`) reads it: with step
        semantics a row is sent when the next one starts, after steps that belong to the
        next row ran, so the source cuts its span at the user's last log into this row.
        """
        with self._lock:
            return None if self._row_step is None else (self._row_step, self._row_at)

    def add_field_source(self, source: FieldSource) -> None:
        """Call `source(epoch)` just before each row is sent; its fields go beneath the
        user's own (a key the user logged wins). A failing source costs its fields only."""
        if not callable(source):
            raise TypeError(f"source: must be callable, got {type(source).__name__}")
        with self._lock:
            self._sources.append(source)

    def finish(
        self, status: Outcome = "completed", reason: str | None = None
    ) -> None:
        """Send the open row and the outcome, wait briefly for the server's acks. Idempotent."""
        if status not in get_args(Outcome):
            raise ValueError(f"status: must be one of {', '.join(map(repr, get_args(Outcome)))},"
                             f" got {status!r}")
        with self._lock:
            if self._finished:
                return
            if self._row_step is not None:
                self._complete_row()
            self._finished = True
            summary = {
                "status": status,
                "epochs_logged": self._rows,
                "seconds": round(time.monotonic() - self._started, 3),
            }
            if status == "failed":
                why = " ".join((reason or "marked failed by the training script").split())
                self._send("failed", reason=why[:MAX_REASON_CHARS], summary=summary)
            else:
                self._send("finished", summary=summary)
        stats = self._emitter.close(timeout=FINISH_WAIT_SECONDS) if self._emitter else None
        if self._journal is not None:
            self._journal.close()
        process.remove(self)
        self._report(stats)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.finish("failed", reason=one_line(exc))
        else:
            self.finish()

    def __repr__(self) -> str:
        where = self.server or f"offline in {self.folder}"
        return f"<causalwatch.Run {self.id} ({where}), {self._rows} rows>"

    # -- rows ----------------------------------------------------------------------------------

    def _advance(self, step: int | None) -> None:
        """Make the row of `step` the open one (None: the open row, or the next step)."""
        if step is None:
            if self._row_step is None:
                self._open_row(0 if self._last_step is None else self._last_step + 1)
            return
        if self._row_step is not None:
            if step == self._row_step:
                return
            if step < self._row_step:
                raise ValueError(
                    f"step: {step} is before the open row's step {self._row_step}; "
                    "steps only increase"
                )
            self._complete_row()
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(
                f"step: {step} was already sent (last step {self._last_step}); steps only increase"
            )
        self._open_row(step)

    def _open_row(self, step: int) -> None:
        self._row_step = step
        self._row_fields = {}
        self._row_custom = {}

    def _complete_row(self) -> None:
        assert self._row_step is not None
        epoch = self._rows + 1
        if self.epochs is not None and epoch == self.epochs + 1:
            # The server holds a run to the length it was given: say so once, here.
            notice(f"run {self.id}: row {epoch} is beyond epochs={self.epochs} given to init(); "
                   "the server refuses rows past it (they stay in the local folder)")
        merged: dict[str, Any] = {}
        custom: dict[str, float] = {}
        for source in self._sources:
            self._merge_source(source, epoch, merged, custom)
        merged.update(self._row_fields)
        custom.update(self._row_custom)
        if len(custom) > MAX_CUSTOM_KEYS:
            # The user's keys were bounded at log(); field sources add to them.
            self._warn_once("custom-cap", f"more than {MAX_CUSTOM_KEYS} custom keys: the rest "
                            "of the field sources' keys are dropped")
            mine = set(self._row_custom)
            extra = [k for k in custom if k not in mine][: MAX_CUSTOM_KEYS - len(mine)]
            custom = {k: v for k, v in custom.items() if k in mine or k in extra}
        F.derive_shares(merged)
        seconds = max(0.0, self._row_at - self._last_row_at)
        merged.setdefault("time", self._row_wall)
        merged.setdefault("epoch_seconds", seconds)
        self._seconds_total += seconds
        if self.epochs is not None and "eta_seconds" not in merged:
            merged["eta_seconds"] = self._seconds_total / epoch * max(0, self.epochs - epoch)
        record: dict[str, Any] = {
            "run_id": self.id, "epoch": epoch, "step": self._row_step, **merged
        }
        if custom:
            record["custom"] = custom
        self._send("epoch", record=record)
        self._rows = epoch
        self._last_step = self._row_step
        self._last_row_at = self._row_at
        self._row_step = None
        self._row_fields = {}
        self._row_custom = {}

    def _merge_source(
        self, source: FieldSource, epoch: int, into: dict[str, Any], custom: dict[str, float]
    ) -> None:
        try:
            given = source(epoch)
        except Exception as err:
            self._warn_once(f"source-{id(source)}", f"field source {source!r} failed: {err!r}")
            return
        for key, value in (given or {}).items():
            if value is None:  # "not measured this epoch" (e.g. SHD between evaluations)
                continue
            try:
                if isinstance(key, str) and key in F.FIELDS:
                    into[key] = F.check_field(key, value)
                else:
                    custom[F.check_custom_key(key)] = float(F.as_number(key, value))
            except ValueError as err:
                self._warn_once(f"source-key-{key}", f"field source value dropped: {err}")

    # -- transport -----------------------------------------------------------------------------

    def _send(self, msg_type: Any, **payload: Any) -> None:
        """Journal the message, then hand it to the emitter; never raises on I/O."""
        seq = self._seq
        self._seq += 1
        if self._journal is not None:
            try:
                self._journal.write(
                    json.dumps(make_message(msg_type, self.id, seq, **payload), allow_nan=False)
                )
            except OSError as err:
                self._warn_once("journal", f"cannot write {self.folder}: {err}")
        if self._emitter is not None:
            self._emitter.send(msg_type, **payload)

    def _report(self, stats: dict[str, Any] | None) -> None:
        if stats is not None and stats["refused"]:
            first = stats["errors"][0]["detail"] if stats["errors"] else "?"
            notice(f"the server refused {stats['refused']} message(s) of run {self.id} "
                   f"(first: {first})")
        if stats is not None and not stats["unacked"]:
            try:
                mark_synced(self.folder, self.id)
            except OSError:
                pass
            return
        why = "it is offline" if stats is None else (
            f"{stats['unacked']} message(s) were not acknowledged by {self.server}"
        )
        notice(f"run {self.id} is kept locally in {self.folder} ({why}); "
               f"upload it with: causalwatch sync {self.folder}")

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("run %s: %s", self.id, text)


def _data_name(config: Mapping[str, Any]) -> str:
    dataset = config.get("dataset")
    return dataset if isinstance(dataset, str) and dataset else "own data"


