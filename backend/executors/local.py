"""The `local` executor: each trainer a subprocess of this machine (the default).

Trainers run in their own session: a backend that dies leaves them training (they buffer
and resend), and the next backend re-attaches to the ones still alive by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import psutil

from backend.executors import OUTPUT_FILE, Ended, Launch
from backend.settings import Settings

SECRET_ENV = ("CAUSALWATCH_TOKEN", "CAUSALWATCH_INGEST_TOKEN")


class LocalHandle:
    def __init__(self, run_id: str, process: subprocess.Popen[bytes] | None, pid: int) -> None:
        self.run_id = run_id
        self.process = process  # None when re-attached after a backend restart
        self._pid = pid

    @property
    def pid(self) -> int | None:
        return self._pid

    def poll(self) -> Ended | None:
        if self.process is not None:
            code = self.process.poll()
            return None if code is None else Ended(code)
        try:
            proc = psutil.Process(self._pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                return None
        except psutil.NoSuchProcess:
            pass
        return Ended(-1)  # not our child: its exit code is gone

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def release(self) -> None:
        pass  # a reaped subprocess holds nothing

    def _signal(self, sig: signal.Signals) -> None:
        try:
            if self.process is not None:
                self.process.send_signal(sig)
            else:
                os.kill(self._pid, sig)
        except ProcessLookupError:
            pass


class LocalExecutor:
    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def launch(self, launch: Launch) -> LocalHandle:
        argv = [self.settings.python, "-m", "trainer", *launch.trainer_args]
        # The trainer gets its run's ingest token and no other secret of ours.
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        env.update(launch.env)
        with (launch.run_dir / OUTPUT_FILE).open("ab") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=launch.run_dir, env=env, start_new_session=True,
            )
        if launch.nice is not None:
            # Set from here rather than in a preexec_fn (unsafe with threads); the
            # trainer has not got past importing torch by now.
            with contextlib.suppress(ProcessLookupError):  # already ended
                os.setpriority(os.PRIO_PROCESS, process.pid, launch.nice)
        return LocalHandle(launch.run_id, process, process.pid)

    def reattach(self, run_id: str, pid: int | None) -> LocalHandle | None:
        if pid is not None and is_trainer_of(pid, run_id):
            return LocalHandle(run_id, None, pid)
        return None


def is_trainer_of(pid: int, run_id: str) -> bool:
    """A live process whose command line is our trainer for this run (pids get reused)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "trainer" in cmdline and run_id in cmdline
