"""The Ray actor that runs one trainer on a cluster node: a remote `Popen`, nothing more.

An actor, not a task, for three reasons:
- a task dies with its owner (the backend that submitted it), while a *detached* actor
  outlives the backend: after a restart the next backend finds it by name (`run-<id>` in the
  backend's namespace) and re-attaches, as the local executor does by pid;
- stop must be graceful first: the actor's `send_signal` delivers SIGTERM to the trainer,
  which finishes its epoch and reports, exactly as a local stop does (`ray.cancel` cannot
  reach into a running actor method, and a task's cancel is a KeyboardInterrupt at best);
- its `wait` returns the trainer's real exit code, even to a backend that re-attached.

The trainer itself is `python -m trainer`, the same command and files as a local trainer
(`python`: the worker's own interpreter, or the one `CAUSALWATCH_PYTHON` names),
streaming to the backend over its websocket. It runs as a child of the actor's worker
process, which dies with that worker (PR_SET_PDEATHSIG): a killed worker or node must not
leave a trainer streaming into a run already marked failed.

Only the standard library is imported at module level: Ray workers import this module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from backend.executors import OUTPUT_FILE, REQUEST_FILE

# Runs in a fresh, single-threaded process before it becomes the trainer (a preexec_fn in
# the actor's multi-threaded worker could deadlock). The death signal survives execv.
_GUARD = """\
import ctypes, os, signal, sys
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(70)  # the worker died before the guard was set: train for nobody
os.execv(sys.argv[2], [sys.argv[2], "-m", "trainer", *sys.argv[3:]])
"""
# After its trainer ended, an actor nobody released (its backend gone for good) exits by
# itself after this long: a detached actor would otherwise hold its CPU forever.
LINGER_SECONDS = 600.0


class TrainerActor:
    """One trainer; its methods all return at once except `wait`, hence max_concurrency > 1."""

    def __init__(
        self, trainer_args: list[str], env: dict[str, str], run_dir: str, nice: int | None,
        python: str | None = None,
    ) -> None:
        self._run_dir = Path(run_dir)
        if not (self._run_dir / REQUEST_FILE).is_file():
            raise RuntimeError(
                f"{self._run_dir / REQUEST_FILE} is not visible on this Ray node "
                f"({_node_ip()}): the ray executor needs the backend's runs directory on a "
                "volume every node mounts at the same path (docs/scaling.md)"
            )
        self._started = threading.Event()
        self._ended = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._error: BaseException | None = None
        self._code: int | None = None
        # The thread that forks the trainer must outlive it: PR_SET_PDEATHSIG fires when the
        # forking *thread* exits, so this one waits on the trainer to its end.
        threading.Thread(
            target=self._run, args=(trainer_args, env, nice, python or sys.executable),
            name="trainer", daemon=True,
        ).start()
        self._started.wait()
        if self._error is not None:
            raise self._error

    def _run(
        self, trainer_args: list[str], env: dict[str, str], nice: int | None, python: str
    ) -> None:
        try:
            # The worker's own environment (Ray sets CUDA_VISIBLE_DEVICES for its GPUs).
            full_env = {**os.environ, **env}
            argv = [sys.executable, "-c", _GUARD, str(os.getpid()), python, *trainer_args]
            with (self._run_dir / OUTPUT_FILE).open("ab") as out:
                self._process = subprocess.Popen(
                    argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=self._run_dir, env=full_env,
                )
            if nice is not None:
                try:
                    os.setpriority(os.PRIO_PROCESS, self._process.pid, nice)
                except ProcessLookupError:
                    pass  # already ended
        except BaseException as err:  # handed to __init__, which raises it to the backend
            self._error = err
            self._started.set()
            return
        self._started.set()
        self._code = self._process.wait()
        self._ended.set()
        threading.Timer(LINGER_SECONDS, os._exit, args=(0,)).start()

    def info(self) -> dict[str, Any]:
        assert self._process is not None  # __init__ raised otherwise
        return {"pid": self._process.pid, "worker_pid": os.getpid(), "node_ip": _node_ip()}

    def wait(self) -> int:
        """The trainer's exit code, once it has one."""
        self._ended.wait()
        assert self._code is not None
        return self._code

    def send_signal(self, signum: int) -> None:
        assert self._process is not None
        if self._process.poll() is None:
            try:
                self._process.send_signal(signum)
            except ProcessLookupError:
                pass


def _node_ip() -> str:
    import ray

    return str(ray.util.get_node_ip_address())
