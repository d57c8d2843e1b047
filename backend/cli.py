"""`causalwatch`: `up` serves the backend; `train` runs a trainer in this terminal."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backend.redact import redact
from backend.settings import Settings

EXIT_USAGE = 2
_stopping = threading.Event()  # set once `up` shuts down on purpose


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: greppable by humans, parseable by log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def up_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="causalwatch up", description="Serve the causalwatch backend.")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="API port (default 8000)")
    p.add_argument("--dashboard-port", type=int, help="dashboard port (default 8050)")
    p.add_argument("--db", help="SQLAlchemy URL (default sqlite under --runs-dir; or DATABASE_URL)")
    p.add_argument("--runs-dir", help="where run folders and the SQLite file live (default runs)")
    p.add_argument("--max-runs", type=int, help="trainer processes at once (default 2)")
    p.add_argument("--data", help="UCI Air Quality CSV handed to trainers")
    p.add_argument("--data-dir", help="folder of CSV/JSON files that runs may name")
    p.add_argument("--max-probes", type=int,
                   help="probe trainers at once, beside --max-runs (default 1; 0: no probes)")
    p.add_argument("--allowed-host", action="append", dest="allowed_hosts", metavar="NAME",
                   help="a host name the API and dashboard answer to besides loopback and "
                   "--host (repeatable; DNS rebinding protection refuses the rest)")
    p.add_argument("--allowed-origin", action="append", dest="allowed_origins",
                   metavar="ORIGIN", help="a browser origin allowed besides the dashboard's, "
                   "e.g. http://127.0.0.1:9050 (repeatable)")
    p.add_argument("--max-run-seconds", type=float,
                   help="stop a run after this long (default 86400)")
    p.add_argument("--executor", choices=("local", "ray"),
                   help="where trainers run: local subprocesses (default) or a Ray cluster")
    p.add_argument("--ray-address", metavar="HOST:PORT",
                   help="--executor ray: the Ray cluster's head (docs/scaling.md)")
    p.add_argument("--no-dashboard", action="store_true", help="serve the API only")
    p.add_argument("--log-level", default="INFO")
    return p


def up(argv: list[str]) -> int:
    import uvicorn

    from backend.main import create_app

    args = up_parser().parse_args(argv)
    given = {
        "host": args.host, "port": args.port, "dashboard_port": args.dashboard_port,
        "database_url": args.db, "runs_dir": args.runs_dir, "max_runs": args.max_runs,
        "data": args.data, "data_dir": args.data_dir, "max_probes": args.max_probes,
        "allowed_hosts": args.allowed_hosts, "allowed_origins": args.allowed_origins,
        "max_run_seconds": args.max_run_seconds,
        "executor": args.executor, "ray_address": args.ray_address,
    }
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
        if not settings.is_loopback and not settings.token:
            # Reachable from other machines: nobody gets in without a token.
            settings = settings.model_copy(update={"token": secrets.token_urlsafe(24)})
            where = _save_token(settings)
            print(f"causalwatch up: binding {settings.host} requires a token; generated one "
                  f"into {where} (readable by you only)", file=sys.stderr, flush=True)
    except ValidationError as err:
        for e in err.errors():
            field = ".".join(str(p) for p in e["loc"])
            field = _ALIASES.get(field, field)
            option = _option_name(field, flag_given=given.get(field) is not None)
            message = e["msg"].removeprefix("Value error, ")
            print(f"causalwatch up: {option}: {message}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(args.log_level.upper())
    log = logging.getLogger("causalwatch")
    log.info(
        "causalwatch API on http://%s:%s (database %s, runs in %s)",
        settings.host, settings.port, settings.db_url.split("@")[-1], settings.runs_dir,
    )
    dashboard = None if args.no_dashboard else _start_dashboard(settings)
    if dashboard is not None:
        _watch_dashboard(dashboard)
    try:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_config=None,
            ws_max_size=2**21, timeout_graceful_shutdown=settings.stop_timeout + 5,
        )
    finally:
        _stopping.set()
        if dashboard is not None:
            dashboard.terminate()
            try:
                dashboard.wait(10)
            except subprocess.TimeoutExpired:
                dashboard.kill()
    return 0


# Settings fields whose flag or environment variable is not simply derived from the name.
_ALIASES = {"CAUSALWATCH_DB": "database_url", "DATABASE_URL": "database_url"}
_FLAGS = {
    "database_url": "--db", "allowed_hosts": "--allowed-host",
    "allowed_origins": "--allowed-origin",
}
_ENV_VARS = {"database_url": ("DATABASE_URL", "CAUSALWATCH_DB")}


def _option_name(field: str, *, flag_given: bool) -> str:
    """How the user gave a refused value: the flag they typed, or the environment variable."""
    flag = _FLAGS.get(field, "--" + field.replace("_", "-"))
    if not flag_given:
        for env in _ENV_VARS.get(field, ("CAUSALWATCH_" + field.upper(),)):
            if os.environ.get(env):
                return env
    return flag


TOKEN_FILE = ".causalwatch-token"


def _save_token(settings: Settings) -> Path:
    """The generated token, in a file of the runs directory only its owner can read: a
    terminal's scrollback and a container's log are read by others."""
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    path = settings.runs_dir / TOKEN_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{settings.token}\n")
    return path


def _start_dashboard(settings: Settings) -> subprocess.Popen[bytes]:
    """The dashboard is its own process: a client of this API over HTTP/WS, nothing more."""
    api = settings.ingest_base_url
    with socket.socket() as probe:  # fail clearly now rather than serve a stale dashboard
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.dashboard_port))
        except OSError:
            raise SystemExit(
                f"causalwatch up: port {settings.dashboard_port} is taken; "
                "choose another with --dashboard-port"
            ) from None
    env = dict(os.environ)
    if settings.token:
        env["CAUSALWATCH_TOKEN"] = settings.token  # never on argv: ps would show it
    hosts = [arg for name in settings.allowed_hosts for arg in ("--allowed-host", name)]
    process = subprocess.Popen(  # fixed argv, no shell
        [sys.executable, "-m", "dashboard", "--host", settings.host,
         "--port", str(settings.dashboard_port), "--api", api, *hosts],
        stdin=subprocess.DEVNULL, env=env,
    )
    url = f"http://{settings.host}:{settings.dashboard_port}"
    logging.getLogger("causalwatch").info("causalwatch dashboard on %s", url)
    # The token is never printed: it is in the environment or the file named above.
    open_with = "/?token=<your token>" if settings.token else ""
    print(f"\n  causalwatch dashboard: {url}{open_with}\n  API: {api}/docs\n",
          file=sys.stderr, flush=True)
    return process


def copy_db(argv: list[str]) -> int:
    from backend.db import DB_FILENAME, StoreError, default_sqlite_url
    from backend.db_copy import copy_database

    p = argparse.ArgumentParser(
        prog="causalwatch copy-db",
        description="Copy every run into another (empty) database, e.g. a shared PostgreSQL.",
    )
    p.add_argument("--to", required=True, metavar="URL",
                   help="target SQLAlchemy URL, e.g. postgresql+psycopg://user@host/causalwatch")
    p.add_argument("--from", dest="source", metavar="URL",
                   help="source URL (default: the SQLite file under --runs-dir)")
    p.add_argument("--runs-dir", default="runs", help="where the SQLite file lives (default runs)")
    args = p.parse_args(argv)
    source = args.source
    if source is None:
        source = default_sqlite_url(Path(args.runs_dir))
        if not (Path(args.runs_dir) / DB_FILENAME).is_file():
            print(f"causalwatch copy-db: --runs-dir: no database at "
                  f"{Path(args.runs_dir) / DB_FILENAME}", file=sys.stderr)
            return EXIT_USAGE
    try:
        counts = copy_database(source, args.to)
    except StoreError as err:
        print(f"causalwatch copy-db: {err.message}", file=sys.stderr)
        return 1
    copied = ", ".join(f"{n} {table}" for table, n in counts.items())
    print(f"copied {copied} to {args.to.split('@')[-1]}")
    return 0


def _watch_dashboard(process: subprocess.Popen[bytes]) -> None:
    """A dashboard that dies takes `up` down with it: half a service must not look healthy.

    The API's health check would stay green while users get no dashboard; shutting down
    (gracefully, as on SIGTERM) lets a supervisor or the container runtime restart both.
    """

    def watch() -> None:
        code = process.wait()
        # Ctrl+C reaches the whole process group: `up` is stopping already.
        if _stopping.is_set() or code == -signal.SIGINT:
            return
        logging.getLogger("causalwatch").error(
            "the dashboard exited (code %s); shutting down so both restart together", code
        )
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="dashboard-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = "up, train, sweep, copy-db, sync, import"
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: causalwatch {{{commands}}} ...\n"
              "  up       serve the backend and the dashboard\n"
              "  train    train in this terminal with a progress bar (python -m trainer)\n"
              "  sweep    queue a grid over config fields × seeds on a running backend\n"
              "  copy-db  copy every run into another database (SQLite → PostgreSQL)\n"
              "  sync     upload offline SDK runs (a run folder or their parent), exactly once\n"
              "  import   load a metrics log (metrics.jsonl, JSONL, CSV) as a finished run")
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    if command == "up":
        return up(rest)
    if command == "copy-db":
        return copy_db(rest)
    if command == "sweep":
        from backend.sweep_cli import sweep_main

        return sweep_main(rest)
    if command in ("sync", "import"):
        # The SDK's commands: its package, loaded only when asked for.
        from causalwatch.cli import import_main, sync_main

        return sync_main(rest) if command == "sync" else import_main(rest)
    if command == "train":
        # The trainer is its own program; the backend never imports its internals.
        os.execv(sys.executable, [sys.executable, "-m", "trainer", *rest])
    print(f"causalwatch: unknown command {command!r}; available: {commands}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
