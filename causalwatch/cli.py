"""`causalwatch sync DIR` and `causalwatch import FILE` (dispatched from backend/cli.py).

Errors are one line naming the file, line or option, with exit code 2 (1 when the server
could not take the upload now: rerun later); never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

EXIT_OK, EXIT_RETRY, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _error(prog: str, text: str) -> None:
    sys.stderr.write(f"{prog}: {text}\n")
    sys.stderr.flush()


def _server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", help="the causalwatch server (default: the run's own, else "
                   "$CAUSALWATCH_SERVER, else http://127.0.0.1:8000)")
    p.add_argument("--token", help="admin token when the server has one (default "
                   "$CAUSALWATCH_TOKEN)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _sync(argv: list[str], prog: str) -> int:
    p = argparse.ArgumentParser(
        prog=prog, description="Upload offline or interrupted SDK runs, exactly once.",
    )
    p.add_argument("dir", metavar="DIR", help="a run folder, or the folder holding run folders "
                   "(e.g. ./causalwatch-runs)")
    _server_options(p)
    args = p.parse_args(argv)
    from causalwatch.server import server_url
    from causalwatch.sync import Synced, SyncError, sync_path

    try:
        server = server_url(args.server) if args.server else None
    except ValueError as err:
        _error(prog, str(err).replace("server:", "--server:", 1))
        return EXIT_USAGE
    try:
        outcomes = sync_path(
            Path(args.dir).expanduser(), server=server, token=args.token,
            progress=not args.no_progress,
        )
    except SyncError as err:
        _error(prog, str(err))
        return EXIT_USAGE
    code = EXIT_OK
    for outcome in outcomes:
        if isinstance(outcome, Synced):
            _say(outcome.line)
        else:
            _error(prog, str(outcome))
            # A wrong folder outweighs a server away: rerunning alone will not fix it.
            code = max(code, EXIT_RETRY if outcome.retry else EXIT_USAGE)
    return code


def _import(argv: list[str], prog: str) -> int:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Load a metrics log (the trainer's metrics.jsonl, or any JSONL/CSV) as a "
        "finished run.",
    )
    p.add_argument("file", metavar="FILE", help="metrics.jsonl of a causalwatch train run, or "
                   "a JSONL/CSV file of per-epoch numbers")
    p.add_argument("--map", dest="mapping", metavar="THEIRS=OURS,...",
                   help="rename columns to record fields (docs/metrics.md), e.g. "
                   "train_loss=loss_total,ep=epoch; THEIRS= leaves a column out; other "
                   "columns are kept as your own (custom)")
    p.add_argument("--name", help="the run's name (default: from the file)")
    p.add_argument("--reference", metavar="PATH", help="reference graph edges (CSV of two "
                   "columns, or JSON)")
    p.add_argument("--dir", help="where the run folder is kept (default $CAUSALWATCH_DIR, "
                   "else ./causalwatch-runs)")
    _server_options(p)
    args = p.parse_args(argv)
    from causalwatch.importer import ImportFileError, build_run_folder, parse_mapping
    from causalwatch.server import server_url
    from causalwatch.sync import SyncError, sync_folder

    try:
        server = server_url(args.server)
    except ValueError as err:
        _error(prog, str(err).replace("server:", "--server:", 1))
        return EXIT_USAGE
    try:
        folder, count = build_run_folder(
            Path(args.file).expanduser(), mapping=parse_mapping(args.mapping), name=args.name,
            server=server, reference=args.reference, dir=args.dir,
        )
    except (ImportFileError, ValueError) as err:
        _error(prog, str(err))
        return EXIT_USAGE
    except OSError as err:
        _error(prog, f"{err.filename or args.dir}: {err.strerror or err}")
        return EXIT_USAGE
    try:
        synced = sync_folder(folder, server=server, token=args.token,
                             progress=not args.no_progress)
    except SyncError as err:
        _error(prog, f"{count} records kept in {folder}, not uploaded ({err}); upload them "
               f"later with: causalwatch sync {folder}")
        return EXIT_RETRY if err.retry else EXIT_USAGE
    _say(f"imported {count} records from {args.file} as run {synced.server_run_id}")
    _say(f"  API: {server}/api/runs/{synced.server_run_id}")
    _say(f"  dashboard: /run/{synced.server_run_id} (e.g. http://127.0.0.1:8050/run/"
         f"{synced.server_run_id})")
    return EXIT_OK


def _guarded(command: str, run: Callable[[list[str], str], int], argv: list[str]) -> int:
    """Run a command; an interruption or a bug is one line too (the folder says where the
    upload stands, and a rerun completes it)."""
    prog = f"causalwatch {command}"
    try:
        return run(argv, prog)
    except KeyboardInterrupt:
        _error(prog, "interrupted; run the same command again to complete it")
        return EXIT_INTERRUPTED
    except Exception as err:  # never a traceback for the user; the type names the bug
        _error(prog, f"unexpected {type(err).__name__}: {err}")
        return EXIT_RETRY


def sync_main(argv: list[str]) -> int:
    return _guarded("sync", _sync, argv)


def import_main(argv: list[str]) -> int:
    return _guarded("import", _import, argv)
