"""`python -m dashboard --port 8050 --api http://127.0.0.1:8000`: serve the dashboard."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time

from dashboard.client import Endpoints
from dashboard.security import ALLOWED_HOSTS_ENV, allowed_hosts, host_name, hosts_from_env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dashboard", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8050)
    p.add_argument("--api", default="http://127.0.0.1:8000", help="backend URL for the server")
    p.add_argument("--public-api", help="backend URL as the browser sees it (default --api)")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument(
        "--allowed-host", action="append", default=[], type=_host_arg, metavar="NAME",
        help="a host name browsers may use besides loopback and --host (repeatable; also "
             f"{ALLOWED_HOSTS_ENV}, comma-separated)",
    )
    # The token comes from the environment only: a command line is visible to `ps`.
    args = p.parse_args(argv)
    try:
        allowed = allowed_hosts(
            args.host, [*args.allowed_host, *hosts_from_env(os.environ.get(ALLOWED_HOSTS_ENV))]
        )
    except ValueError as err:
        p.error(f"{ALLOWED_HOSTS_ENV} or --host: {err}")

    from waitress import serve

    from dashboard.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _exit_with_parent()
    token = os.environ.get("CAUSALWATCH_TOKEN") or None
    app = create_app(
        Endpoints(api_url=args.api, public_url=args.public_api or args.api, token=token),
        allowed=allowed,
    )
    logging.getLogger("causalwatch.dashboard").info(
        "answering to host names: %s", ", ".join(sorted(allowed))
    )
    # waitress: a production WSGI server (Dash runs on Flask), unlike Flask's dev server.
    serve(app.server, host=args.host, port=args.port, threads=args.threads, ident="causalwatch")
    return 0


def _host_arg(value: str) -> str:
    try:
        return host_name(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _exit_with_parent() -> None:
    """Started by `causalwatch up`: never outlive it, even if it was killed with SIGKILL."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
