"""`causalwatch sync`: upload a run folder's messages to the server, exactly once.

Exactly once rests on three facts:
- the server run is created once: its id is written to run.json *before* anything is sent,
  so an interrupted sync resumes the same server run instead of creating another;
- the server never stores an epoch twice: an identical resend is acked, a different record
  for a stored epoch refused, so replaying the whole journal after an interruption is safe;
- the `synced` marker is written only after the server holds every local epoch, so a
  second sync does nothing, and one interrupted anywhere is completed by the next.

A server run already closed (its `finished` arrived before the interruption) refuses new
connections (close code 4409): its stored epochs are then compared with the local ones.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from causalwatch.local import (
    Journal,
    RunInfo,
    is_synced,
    mark_synced,
    read_messages,
    run_folders,
)
from causalwatch.server import ServerError, admin_token, create_run, get_metrics, get_run

# With no ack for this long, a sync gives up (and says to run it again).
STALL_SECONDS = 60.0
_POLL_SECONDS = 0.05
_ENVELOPE = ("v", "type", "run_id", "seq")
_ENDINGS = ("finished", "failed")
ENDED_WITHOUT_FINISH = "the training process ended without finish() (closed by causalwatch sync)"


class SyncError(Exception):
    """A run folder that could not be synced; the message is one line for the user.

    `retry`: a later run of the same command can succeed (the server was away, the run still
    open); otherwise the path or the folder itself is wrong.
    """

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass
class Synced:
    folder: Path
    server_run_id: str
    line: str  # what happened, for the user


def sync_path(
    path: Path, *, server: str | None = None, token: str | None = None, progress: bool = True
) -> list[Synced | SyncError]:
    """Sync `path` (a run folder, or the parent of many); one outcome per run folder."""
    if not path.exists():
        raise SyncError(f"{path}: no such directory")
    if not path.is_dir():
        raise SyncError(f"{path}: not a directory")
    folders = run_folders(path)
    if not folders:
        raise SyncError(f"{path}: no causalwatch run folder (a folder with run.json) here")
    outcomes: list[Synced | SyncError] = []
    for folder in folders:
        try:
            outcomes.append(sync_folder(folder, server=server, token=token, progress=progress))
        except SyncError as err:
            outcomes.append(err)
    return outcomes


def sync_folder(
    folder: Path,
    *,
    server: str | None = None,
    token: str | None = None,
    progress: bool = True,
    stall_seconds: float = STALL_SECONDS,
) -> Synced:
    info = _read_info(folder)
    if is_synced(folder):
        server_id = (folder / "synced").read_text("utf-8").strip() or info.server_run_id or "?"
        return Synced(folder, server_id, f"{folder.name}: already synced (server run "
                      f"{server_id}); nothing to do")
    try:
        messages = read_messages(folder)
    except (OSError, ValueError) as err:
        raise SyncError(str(err)) from None
    if not messages or messages[0].get("type") != "started":
        raise SyncError(f"{folder / 'messages.jsonl'}: does not start with a started message")
    if messages[-1].get("type") not in _ENDINGS:
        messages.append(_close_unfinished(folder, info, messages))
    url = (server or info.server or "").rstrip("/")
    if not url:
        from causalwatch.server import server_url

        url = server_url(None)
    admin = admin_token(token)
    try:
        if info.server_run_id is not None and url != info.server:
            # Another name for the same server (localhost / 127.0.0.1) must not make a
            # second run: only a server that does not know the run gets a new one.
            if get_run(url, info.server_run_id, token=admin) is None:
                info.server_run_id = None
        if info.server_run_id is None:
            _create_server_run(folder, info, url, messages, admin)
        assert info.server_run_id is not None
        run = get_run(url, info.server_run_id, token=admin)
        if run is None:
            raise SyncError(f"{folder.name}: server {url} does not know run "
                            f"{info.server_run_id} (run.json names another server?)")
        refused: dict[int, str] = {}
        if run["status"] not in ("completed", "stopped", "failed"):
            refused = _replay(url, info, messages, progress=progress, stall_seconds=stall_seconds)
        return _verify(folder, info, url=url, messages=messages, admin=admin, refused=refused)
    except httpx.HTTPError as err:
        raise SyncError(f"{folder.name}: server {url} unreachable ({type(err).__name__}: "
                        f"{err}); run the sync again later", retry=True) from None
    except ServerError as err:
        raise SyncError(f"{folder.name}: server {url}: {err}", retry=err.status >= 500) from None


def _read_info(folder: Path) -> RunInfo:
    try:
        return RunInfo.read(folder)
    except FileNotFoundError:
        raise SyncError(f"{folder / 'run.json'}: file not found") from None
    except (OSError, ValueError, TypeError) as err:
        raise SyncError(f"{folder / 'run.json'}: unreadable ({err})") from None


def _close_unfinished(
    folder: Path, info: RunInfo, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    """A run whose process died without finishing (SIGKILL, power loss) gets its ending, in
    the journal first so that every later sync replays the same messages."""
    same_host = info.extra.get("host", socket.gethostname()) == socket.gethostname()
    if info.pid is not None and same_host and info.pid != os.getpid():
        if _alive(info.pid):
            raise SyncError(f"{folder.name}: still being written by process {info.pid}; sync "
                            "it once that run has finished", retry=True)
    last = messages[-1]
    ending = {
        "v": last.get("v", 1), "type": "failed", "run_id": last.get("run_id"),
        "seq": int(last.get("seq", len(messages) - 1)) + 1,
        "reason": ENDED_WITHOUT_FINISH,
        "summary": {"status": "failed", "epochs_logged": len(_epochs(messages))},
    }
    journal = Journal(folder)
    try:
        journal.write(json.dumps(ending))
    finally:
        journal.close()
    return ending


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _create_server_run(
    folder: Path, info: RunInfo, url: str, messages: list[dict[str, Any]], admin: str | None
) -> None:
    config = messages[0].get("config") if isinstance(messages[0].get("config"), dict) else {}
    run_id, ingest_token = create_run(
        url, name=info.name, config=config or {}, epochs=info.epochs, token=admin,
        timeout=httpx.Timeout(30.0, connect=5.0),
    )
    info.server, info.server_run_id, info.ingest_token = url, run_id, ingest_token
    # Before the first message leaves: an interrupted sync resumes this server run.
    info.write(folder)


def _replay(
    url: str,
    info: RunInfo,
    messages: list[dict[str, Any]],
    *,
    progress: bool,
    stall_seconds: float,
) -> dict[int, str]:
    """Send every message through the trainer's emitter; wait for every answer (or a stall).

    Returns the refusals' details by seq (a message's seq is its index in `messages`).
    """
    from tqdm import tqdm

    from trainer.emitter import Emitter

    assert info.server_run_id is not None
    run_id = info.server_run_id
    emitter = Emitter(url, run_id, token=info.ingest_token)
    for message in messages:
        payload = {k: v for k, v in message.items() if k not in _ENVELOPE}
        if message["type"] == "epoch" and isinstance(payload.get("record"), dict):
            # An offline run's records carry its local id: the server's is the one it checks.
            payload["record"] = {**payload["record"], "run_id": run_id}
        emitter.send(message["type"], **payload)
    total = len(messages)
    bar = tqdm(total=total, unit="msg", desc=f"sync {info.local_id[:28]}", leave=False,
               disable=None if progress else True, dynamic_ncols=True)
    emitter.start()
    try:
        shown, last_progress = 0, time.monotonic()
        while True:
            stats = emitter.stats
            answered = stats["acked"] + stats["refused"]
            if answered > shown:
                bar.update(answered - shown)
                shown, last_progress = answered, time.monotonic()
            if answered >= total:
                break
            if time.monotonic() - last_progress > stall_seconds:
                break
            time.sleep(_POLL_SECONDS)
    finally:
        bar.close()
        # Unanswered messages are judged by _verify: the server run may have been closed
        # meanwhile (its epochs all there), or the server stopped answering.
        stats = emitter.close(timeout=1.0)
    return {int(e["seq"]): str(e.get("detail")) for e in stats["errors"]}


def _epochs(messages: list[dict[str, Any]]) -> set[int]:
    return {
        int(m["record"]["epoch"]) for m in messages
        if m.get("type") == "epoch" and isinstance(m.get("record"), dict)
        and isinstance(m["record"].get("epoch"), int)
    }


def _verify(
    folder: Path,
    info: RunInfo,
    *,
    url: str,
    messages: list[dict[str, Any]],
    admin: str | None,
    refused: dict[int, str],
) -> Synced:
    """Mark the folder synced once the run is closed and holds every local epoch it can.

    An epoch the server refused (with a reason, e.g. beyond the run's length) can never be
    stored: it does not keep the folder unsynced; it is named in the outcome instead.
    """
    assert info.server_run_id is not None
    run = get_run(url, info.server_run_id, token=admin)
    stored = {int(r["epoch"]) for r in get_metrics(url, info.server_run_id, token=admin)}
    where = f"{url}/api/runs/{info.server_run_id}"
    length = int((run or {}).get("epochs_total") or 0)
    refused_epochs = {
        int(messages[seq]["record"]["epoch"]) for seq in refused
        if seq < len(messages) and messages[seq].get("type") == "epoch"
    }
    local = _epochs(messages)
    missing = local - stored
    unstorable = {e for e in missing if e in refused_epochs or (length and e > length)}
    lost = sorted(missing - unstorable)
    if lost:
        shown = ", ".join(map(str, lost[:10])) + (" …" if len(lost) > 10 else "")
        raise SyncError(f"{folder.name}: the server run {info.server_run_id} lacks "
                        f"{len(lost)} epoch(s) ({shown}); run the sync again", retry=True)
    if run is None or run["status"] not in ("completed", "stopped", "failed"):
        raise SyncError(f"{folder.name}: every epoch is on {where} but the run is still "
                        f"{(run or {}).get('status')}; run the sync again", retry=True)
    mark_synced(folder, info.server_run_id)
    note = ""
    if unstorable:
        first = next(iter(refused.values()), f"beyond the run's {length} epochs")
        note = f"; {len(unstorable)} epoch(s) refused by the server ({first})"
    return Synced(folder, info.server_run_id,
                  f"{folder.name}: synced {len(local - missing)} epoch(s) to {where}{note}")
