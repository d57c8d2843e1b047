"""This process's runs: the current one, the open ones, and how the process's end ends them.

An open run is finished with the process: `failed` with the uncaught exception that killed
it (seen by `sys.excepthook`, which is chained, not replaced), else `completed` (atexit). A
forked child (a DataLoader worker) forgets its parent's runs, so its exit finishes none.
"""

from __future__ import annotations

import atexit
import os
import sys
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from causalwatch.run import Run

MAX_REASON_CHARS = 500


def notice(text: str) -> None:
    """One line for the user on stderr: what happened to their run, and what to do."""
    sys.stderr.write(f"causalwatch: {text}\n")
    sys.stderr.flush()


def one_line(exc: BaseException) -> str:
    """An exception as a run's failure reason: its repr on one line, bounded."""
    text = " ".join(repr(exc).split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


class _Process:
    """The runs of this process (one instance: `process`)."""

    def __init__(self) -> None:
        self.current: Run | None = None
        self.open_runs: list[Run] = []
        self.hooks_installed = False
        self.uncaught: str | None = None  # one-line repr of the exception that ends us
        self.previous_excepthook = sys.excepthook

    def add(self, run: Run) -> None:
        self.open_runs.append(run)
        self.current = run

    def forget_all(self) -> None:
        """In a forked child (a DataLoader worker, ...): the parent's runs are the parent's,
        and a child ending must not finish them."""
        self.current = None
        self.open_runs = []

    def remove(self, run: Run) -> None:
        if self.current is run:
            self.current = None
        if run in self.open_runs:
            self.open_runs.remove(run)

    def install_hooks(self) -> None:
        """Once per process: chain sys.excepthook, register atexit and the fork handler."""
        if self.hooks_installed:
            return
        self.hooks_installed = True
        self.previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
        atexit.register(_finish_open_runs)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.forget_all)


process = _Process()


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    process.uncaught = one_line(exc)
    process.previous_excepthook(exc_type, exc, tb)


def _finish_open_runs() -> None:
    for run in list(process.open_runs):
        try:
            if process.uncaught:
                run.finish("failed", reason=f"uncaught {process.uncaught}")
            else:
                run.finish()
        except Exception as err:  # the process is ending: report, never raise from atexit
            notice(f"could not finish run {run.id}: {err!r}")
