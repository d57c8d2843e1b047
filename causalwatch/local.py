"""A run's local folder: every message as sent (`messages.jsonl`), where it went (`run.json`).

`<dir>/<run_id>/` exists for every run, online or not, so that a run is never lost when the
server is away: `causalwatch sync` replays the folder later. Lines are written whole, with
one `write()` each, and flushed at once: a killed process leaves at most a torn last line,
which readers skip (it was never acknowledged either).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MESSAGES_FILE = "messages.jsonl"
RUN_FILE = "run.json"
SYNCED_FILE = "synced"
DEFAULT_DIR = "causalwatch-runs"


def runs_dir(given: str | os.PathLike[str] | None) -> Path:
    """Where run folders go: `dir=`, else $CAUSALWATCH_DIR, else ./causalwatch-runs."""
    chosen = given if given is not None else os.environ.get("CAUSALWATCH_DIR") or DEFAULT_DIR
    return Path(chosen).expanduser().resolve()


@dataclass
class RunInfo:
    """`run.json`: enough to resume the upload of a run to its server run (mode 0600: it
    holds the run's ingest token)."""

    local_id: str
    server: str | None = None
    server_run_id: str | None = None
    ingest_token: str | None = None
    name: str | None = None
    epochs: int | None = None
    pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> RunInfo:
        raw = json.loads((folder / RUN_FILE).read_text("utf-8"))
        if not isinstance(raw, dict) or not isinstance(raw.get("local_id"), str):
            raise ValueError(f"{folder / RUN_FILE}: not a causalwatch run file")
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)

    def write(self, folder: Path) -> None:
        """Replace run.json atomically (a crash leaves the old or the new, never half)."""
        path = folder / RUN_FILE
        tmp = folder / f".{RUN_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(self), out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)


class Journal:
    """Appends one JSON line per message to `messages.jsonl`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / MESSAGES_FILE
        _drop_torn_tail(self.path)
        # Unbuffered, append-only: each line reaches the file in one write() call.
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )

    def write(self, text: str) -> None:
        if self._fd is None:
            raise ValueError("the journal is closed")
        data = (text + "\n").encode("utf-8")
        while data:  # a short write (disk nearly full, signal) is resumed, not dropped
            written = os.write(self._fd, data)
            data = data[written:]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _drop_torn_tail(path: Path) -> None:
    """Cut a torn last line (a process killed mid-write) before appending: a line appended
    to it would make both unreadable. It was never sent: the journal is written first."""
    try:
        with path.open("rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        return


def jsonl_objects(path: Path, text: str, error: type[ValueError] = ValueError
                  ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each line of JSON-lines `text` read from `path`.

    Blank lines and a torn last line are skipped: a process killed mid-write leaves one, and
    the writers (this journal, the trainer's metrics.jsonl) flush whole lines only. Any other
    line that is not a JSON object raises `error` naming the file and line.
    """
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            if number == len(lines):
                continue
            raise error(f"{path}: line {number} is not JSON") from None
        if not isinstance(value, dict):
            raise error(f"{path}: line {number} is not a JSON object")
        yield number, value


def read_messages(folder: Path) -> list[dict[str, Any]]:
    """The messages of a run folder in order; a torn last line (a crash mid-write) is skipped.

    A bad line anywhere else is corruption: ValueError naming the file and line.
    """
    path = folder / MESSAGES_FILE
    if not path.is_file():
        return []
    messages = []
    for number, message in jsonl_objects(path, path.read_text("utf-8")):
        if not isinstance(message.get("type"), str):
            raise ValueError(f"{path}: line {number} is not a protocol message")
        messages.append(message)
    return messages


def is_synced(folder: Path) -> bool:
    return (folder / SYNCED_FILE).exists()


def mark_synced(folder: Path, server_run_id: str) -> None:
    (folder / SYNCED_FILE).write_text(server_run_id + "\n", "utf-8")


def run_folders(path: Path) -> list[Path]:
    """`path` itself if it is a run folder, else its run folders (sorted by name)."""
    if (path / RUN_FILE).is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_dir() and (p / RUN_FILE).is_file())
