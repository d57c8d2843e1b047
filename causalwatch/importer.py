"""`causalwatch import FILE`: an existing metrics log becomes a finished sdk run.

The file is turned into a run folder (the journal an SDK run would have written) and that
folder is synced: the upload is exactly once and resumable like any `causalwatch sync`, and
a server that is down leaves the folder to sync later.

Two kinds of file:
- the trainer's own `metrics.jsonl` (trainer/runlog.py: one EpochRecord per line): every
  record is imported as it is, epoch, step and time included, and a `config.json` beside it
  becomes the run's config;
- any JSONL (one object per line) or CSV (header row; `,` or `;`) of numbers: columns named
  like an EpochRecord field fill it, `--map their_col=our_field` renames (or, with nothing
  after `=`, leaves a column out), every other column is the run's own `custom` value.
"""

from __future__ import annotations

import csv
import json
import secrets
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from causalwatch import fields as F
from causalwatch.local import Journal, RunInfo, jsonl_objects, runs_dir
from causalwatch.reference import load_reference
from trainer.protocol import MAX_INT, NO_REFERENCE_KIND, make_message

# Columns a record takes besides the metric fields; `run_id` is replaced by the new run's.
_KEYS = {"epoch", "step"}
_IGNORED = {"run_id"}


class ImportFileError(ValueError):
    """A file that cannot be imported; the message names the file, line and column."""


def parse_mapping(text: str | None) -> dict[str, str]:
    """`their_col=our_field,...` → {their_col: our_field} ("" leaves the column out)."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ImportFileError(f"--map: {part.strip()!r} must be their_column=our_field")
        theirs, ours = (s.strip() for s in part.split("=", 1))
        if not theirs:
            raise ImportFileError(f"--map: {part.strip()!r} names no column")
        if ours and ours not in F.FIELDS and ours not in _KEYS:
            raise ImportFileError(
                f"--map: {ours!r} is not a record field (docs/metrics.md lists them; "
                f"leave it out with {theirs}=)"
            )
        mapping[theirs] = ours
    return mapping


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a JSONL or CSV file; CSV cells stay strings, empty ones absent."""
    if not path.is_file():
        problem = "not a file" if path.exists() else "file not found"
        raise ImportFileError(f"{path}: {problem}")
    try:
        text = path.read_text("utf-8-sig")  # a spreadsheet's BOM is no column name
    except (OSError, UnicodeDecodeError) as err:
        raise ImportFileError(f"{path}: unreadable ({err})") from None
    if path.suffix.lower() == ".csv" or not text.lstrip().startswith("{"):
        yield from _csv_rows(path, text)
        return
    yield from jsonl_objects(path, text, ImportFileError)


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    if not reader.fieldnames:
        raise ImportFileError(f"{path}: no header row")
    for row in reader:
        if None in row:
            raise ImportFileError(f"{path}: line {reader.line_num} has more cells than the header")
        yield reader.line_num, {k.strip(): v for k, v in row.items() if v is not None and v != ""}


def is_trainer_record(row: Mapping[str, Any]) -> bool:
    """A line of the trainer's metrics.jsonl: its run id, its epoch and only record fields."""
    keys = set(row)
    return {"run_id", "epoch", "loss_total"} <= keys <= set(F.FIELDS) | _KEYS | {
        "run_id", "custom"
    }


def _records(
    path: Path, mapping: dict[str, str]
) -> tuple[list[dict[str, Any]], bool]:
    """The file's records (without run_id) and whether it is the trainer's own log."""
    rows = list(read_rows(path))
    if not rows:
        raise ImportFileError(f"{path}: no rows to import")
    trainer_log = not mapping and all(is_trainer_record(row) for _, row in rows)
    if mapping:
        columns = set().union(*(row.keys() for _, row in rows))
        for theirs in mapping:
            if theirs not in columns:
                raise ImportFileError(f"--map: column {theirs!r} is not in {path}")
    records = []
    previous = 0
    for ordinal, (number, row) in enumerate(rows, start=1):
        where = f"{path}: line {number}"
        record: dict[str, Any] = {}
        custom: dict[str, float] = {}
        for column, value in row.items():
            name = mapping.get(column, column)
            if not name or name in _IGNORED or value is None:
                continue
            try:
                if name in _KEYS:
                    record[name] = _whole(name, value)
                elif name in F.FIELDS:
                    record[name] = F.check_field(name, _parsed(value))
                elif name == "custom" and isinstance(value, dict):
                    for key, number_ in value.items():
                        custom[F.check_custom_key(key)] = float(F.as_number(key, number_))
                else:
                    custom[F.check_custom_key(name)] = float(F.as_number(name, _parsed(value)))
            except ValueError as err:
                hint = "" if trainer_log else f" (leave the column out with --map {column}=)"
                raise ImportFileError(f"{where}, column {column!r}: {err}{hint}") from None
        if len(custom) > F.MAX_CUSTOM_KEYS:
            raise ImportFileError(f"{where}: {len(custom)} custom columns, at most "
                               f"{F.MAX_CUSTOM_KEYS}; leave some out with --map col=")
        epoch = record.setdefault("epoch", ordinal)
        if epoch < 1 or epoch <= previous:
            raise ImportFileError(f"{where}, column 'epoch': {epoch} must be ≥ 1 and after the "
                               f"previous row's {previous}")
        previous = epoch
        record.setdefault("step", ordinal - 1)
        if custom:
            record["custom"] = custom
        records.append(record)
    return records, trainer_log


def _parsed(value: Any) -> Any:
    """A CSV cell as a number when it reads as one (JSON values are left as they are)."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        try:
            return float(text.replace(",", ".")) if text.count(",") == 1 and "." not in text \
                else float(text)
        except ValueError:
            return value
    return value


def _whole(name: str, value: Any) -> int:
    number = F.as_number(name, _parsed(value))
    if isinstance(number, bool) or float(number) != int(number) or not 0 <= number <= MAX_INT:
        raise ValueError(f"{name}: must be a whole number ≥ 0, got {value!r}")
    return int(number)


def build_run_folder(
    path: Path,
    *,
    mapping: dict[str, str] | None = None,
    name: str | None = None,
    server: str | None,
    reference: str | None = None,
    dir: str | None = None,
) -> tuple[Path, int]:
    """Write the run folder an SDK run would have left for this file; (folder, records)."""
    records, trainer_log = _records(path, mapping or {})
    config: dict[str, Any] = {}
    config_file = path.parent / "config.json"
    if trainer_log and config_file.is_file():
        try:
            loaded = json.loads(config_file.read_text("utf-8"))
        except ValueError:
            raise ImportFileError(f"{config_file}: not JSON") from None
        if isinstance(loaded, dict):
            config = loaded
    edges = load_reference(reference) if reference else None
    local_id = f"import-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    folder = runs_dir(dir) / local_id
    folder.mkdir(parents=True)
    default_name = path.parent.name if trainer_log else path.stem
    info = RunInfo(
        local_id=local_id, server=server, name=name or f"import of {default_name}",
        epochs=max(r["epoch"] for r in records),
        extra={"host": socket.gethostname(), "imported_from": str(path.resolve())},
    )
    info.write(folder)
    data: dict[str, Any] = {
        "name": str(config.get("dataset") or path.name),
        "reference_kind": "user" if edges is not None else NO_REFERENCE_KIND,
    }
    if edges is not None:
        data["reference_edges"] = [list(e) for e in edges]
    messages = [("started", {"config": config, "data": data})]
    messages += [("epoch", {"record": {"run_id": local_id, **r}}) for r in records]
    summary = {"status": "completed", "epochs_logged": len(records), "imported_from": path.name}
    messages.append(("finished", {"summary": summary}))
    journal = Journal(folder)
    try:
        for seq, (msg_type, payload) in enumerate(messages):
            message = make_message(msg_type, local_id, seq, **payload)  # type: ignore[arg-type]
            journal.write(json.dumps(message, allow_nan=False))
    finally:
        journal.close()
    return folder, len(records)
