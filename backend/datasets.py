"""Data files a run may name: those of `causalwatch up --data-dir`, and uploaded ones.

A run's config names a file, never a path: `data_file` / `reference_file` hold a plain file
name of the data dir, or `upload:<name>` for a file uploaded into `<runs dir>/datasets/`.
Names cannot hold a folder or start with a dot (`trainer.config.FILE_NAME_PATTERN`), and
every resolution is checked again after following symlinks, so no name reaches a file
outside those two folders. The trainer gets the resolved absolute paths as `--data` and
`--reference`; it alone reads the contents in full (and refuses bad files by name).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any, Literal

from backend.schemas import DatasetPublic
from backend.settings import Settings
from trainer.config import FILE_NAME_PATTERN, UPLOAD_PREFIX

UPLOADS_DIR = "datasets"  # under the runs dir
SUFFIXES = {".csv": "csv", ".json": "reference"}
_NAME = re.compile(FILE_NAME_PATTERN)


class DatasetError(ValueError):
    """A file name or upload was refused; `field` names the input, `status` the HTTP code."""

    def __init__(self, message: str, field: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


def uploads_dir(settings: Settings) -> Path:
    return settings.runs_dir / UPLOADS_DIR


def list_datasets(settings: Settings) -> list[DatasetPublic]:
    """Every nameable file: the data dir's first, then the uploads, each sorted by name."""
    found: list[DatasetPublic] = []
    folders: list[tuple[Path | None, Literal["data_dir", "upload"], str]] = [
        (settings.data_dir, "data_dir", ""), (uploads_dir(settings), "upload", UPLOAD_PREFIX),
    ]
    for folder, source, prefix in folders:
        if folder is None or not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            name = prefix + entry.name
            if not _NAME.match(name) or entry.suffix.lower() not in SUFFIXES:
                continue
            try:
                path = resolve_dataset(settings, name, "name")
            except DatasetError:
                continue  # a symlink out of the folder, or not a regular file: not offered
            found.append(_describe(name, source, path))
    return found


def resolve_dataset(settings: Settings, name: str, field: str) -> Path:
    """The absolute path behind a config's file name, or DatasetError naming `field`."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise DatasetError(
            f"{field}: {name!r} is not a file name (letters, digits, '._+() -', no folders; "
            f"'{UPLOAD_PREFIX}<name>' for an uploaded file)", field,
        )
    if name.startswith(UPLOAD_PREFIX):
        folder, bare, where = uploads_dir(settings), name[len(UPLOAD_PREFIX):], "uploaded files"
    elif settings.data_dir is None:
        raise DatasetError(
            f"{field}: {name!r} names a data-dir file, but the backend was started without "
            f"--data-dir (upload the file, then name it '{UPLOAD_PREFIX}<name>')", field,
        )
    else:
        folder, bare, where = settings.data_dir, name, f"the data dir {settings.data_dir}"
    root = folder.resolve()
    try:
        path = (folder / bare).resolve(strict=True)
    except (FileNotFoundError, RuntimeError):  # RuntimeError: a symlink loop
        raise DatasetError(f"{field}: no file {bare!r} among {where}", field) from None
    if not path.is_relative_to(root) or not path.is_file():
        raise DatasetError(f"{field}: {bare!r} is not a regular file inside {where}", field)
    return path


def trainer_file_args(settings: Settings, config: dict[str, Any]) -> list[str]:
    """`--data` / `--reference` for a run's trainer, from its config's file names."""
    args: list[str] = []
    data_file, reference_file = config.get("data_file"), config.get("reference_file")
    if data_file:
        args += ["--data", str(resolve_dataset(settings, data_file, "data_file"))]
    elif config.get("dataset") == "csv":
        raise DatasetError(
            "data_file: dataset csv needs a file: name one listed by GET /api/datasets",
            "data_file",
        )
    elif settings.data:
        args += ["--data", settings.data]
    if reference_file:
        args += ["--reference", str(resolve_dataset(settings, reference_file, "reference_file"))]
    return args


def save_upload(settings: Settings, filename: str, body: bytes) -> DatasetPublic:
    """Keep an uploaded CSV or reference JSON under the runs dir; never replace one.

    Runs name their file, and a restart re-reads it: an upload that could be overwritten
    would silently change the data under a finished run's name.
    """
    name = UPLOAD_PREFIX + filename
    if not _NAME.match(name):
        raise DatasetError(
            f"name: {filename!r} is not a file name (letters, digits, '._+() -', no folders, "
            "not starting with a dot)", "name",
        )
    kind = SUFFIXES.get(Path(filename).suffix.lower())
    if kind is None:
        raise DatasetError(f"name: {filename!r} must end in .csv or .json", "name")
    _check_content(filename, kind, body)
    folder = uploads_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    partial = folder / f".{filename}.{secrets.token_hex(4)}.part"
    partial.write_bytes(body)
    try:
        # link() fails if the name exists, atomically: two uploads cannot both win.
        os.link(partial, target)
    except FileExistsError:
        raise DatasetError(
            f"name: an uploaded file {filename!r} exists already; choose another name",
            "name", status=409,
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return _describe(name, "upload", target)


def _check_content(filename: str, kind: str, body: bytes) -> None:
    """Cheap checks that catch the wrong file now; the trainer checks the rest at start."""
    if not body.strip():
        raise DatasetError(f"body: {filename!r} is empty", "body")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"body: {filename!r} is not UTF-8 text ({err.reason})", "body") from None
    if kind == "reference":
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as err:
            raise DatasetError(f"body: {filename!r} is not JSON ({err.msg})", "body") from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("edges"), list):
            raise DatasetError(
                f'body: {filename!r} must be {{"edges": [{{"from": .., "to": ..}}, ..]}}', "body"
            )
    elif len(_header(text.partition("\n")[0])) < 2:
        raise DatasetError(
            f"body: {filename!r} has no header of at least 2 columns separated by ',' or ';'",
            "body",
        )


def _header(line: str) -> list[str]:
    line = line.strip()
    sep = ";" if line.count(";") > line.count(",") else ","
    names = [c.strip().strip('"').strip() for c in line.split(sep)]
    return [n for n in names if n] if len(names) > 1 else []


def _describe(name: str, source: Literal["data_dir", "upload"], path: Path) -> DatasetPublic:
    kind = SUFFIXES[path.suffix.lower()]
    columns = None
    if kind == "csv":
        try:
            with path.open(encoding="utf-8-sig", errors="replace") as fh:
                columns = _header(fh.readline(64 * 1024)) or None
        except OSError:
            columns = None
    return DatasetPublic(
        name=name, source=source, kind=kind,  # type: ignore[arg-type]
        size_bytes=path.stat().st_size, columns=columns,
    )
