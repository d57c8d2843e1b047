"""Waiting for and ending the real processes the tests (and the benches) start.

The benches import this module too (bench/_common.py): one way to wait for a server and one
way to end it, for every caller that starts `causalwatch up`, a dashboard or `make run`.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterable

import httpx
import psutil


def wait_until_answers(
    url: str,
    process: subprocess.Popen[bytes] | None,
    log: Callable[[], str],
    *,
    timeout: float = 60,
    statuses: Iterable[int] = (200,),
    what: str = "server",
) -> None:
    """Poll `url` until it answers with one of `statuses`.

    RuntimeError, with the end of `log()`, if `process` exits first or `timeout` passes.
    """
    expected = set(statuses)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}): {log()[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code in expected:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on {url} within {timeout:g} s: {log()[-3000:]}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def end_processes(procs: list[psutil.Process], grace: float = 3) -> None:
    """SIGTERM to every one, SIGKILL to those still alive after `grace` seconds (0: at once)."""
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace) if grace > 0 else ([], procs)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
