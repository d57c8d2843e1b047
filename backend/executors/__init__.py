"""Where trainers run: the seam between the supervisor and one module per executor.

The supervisor decides *when* a run starts, stops and ends (slots, stop timeouts, outcomes);
an executor only knows *how*: `local` starts `python -m trainer` as a subprocess of this
machine (backend/executors/local.py), `ray` starts the same command inside a Ray actor on
a cluster node (backend/executors/ray_executor.py). Both hand back a `TrainerHandle`.

Nothing heavy is imported here: Ray workers import this package to load the actor class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from backend.schemas import RunKind
    from backend.settings import Settings

REQUEST_FILE = "request.json"  # the run's whole config, written by the supervisor
OUTPUT_FILE = "trainer.out"  # the trainer's stdout and stderr


class LaunchError(Exception):
    """An executor could not start a trainer; the message says why, for the run's reason."""


@dataclass(frozen=True)
class Launch:
    """Everything an executor needs to start one trainer, whatever the machine."""

    run_id: str
    kind: RunKind
    run_dir: Path
    trainer_args: list[str]  # after `python -m trainer`
    env: dict[str, str] = field(default_factory=dict)  # added to the trainer's environment
    nice: int | None = None  # CPU niceness (probes take idle CPU only)
    num_gpus: int = 0  # GPUs the trainer asks for (config device `cuda`)


@dataclass(frozen=True)
class Ended:
    """How a trainer ended: its exit code (-1 when unknowable), and the executor's own word
    when it has one (Ray's reason for a dead worker or a trainer it could not place)."""

    code: int
    reason: str | None = None


class TrainerHandle(Protocol):
    """One started (or re-attached) trainer. Every call returns at once."""

    run_id: str

    @property
    def pid(self) -> int | None:
        """The trainer's process id where known (on a Ray node, that node's pid)."""

    def poll(self) -> Ended | None:
        """None while the trainer lives; how it ended once it has."""

    def terminate(self) -> None:
        """Ask for a graceful end: the trainer finishes its epoch and reports (SIGTERM)."""

    def kill(self) -> None:
        """End it now (SIGKILL; on Ray the actor too)."""

    def release(self) -> None:
        """Free what the executor holds for an ended trainer (a Ray actor)."""


class Executor(Protocol):
    name: str

    def start(self) -> None:
        """Connect to where trainers run (blocking; called once, off the event loop)."""

    def launch(self, launch: Launch) -> TrainerHandle:
        """Start a trainer; raises LaunchError or OSError when it cannot."""

    def reattach(self, run_id: str, pid: int | None) -> TrainerHandle | None:
        """The trainer of a run a previous backend left running, if it still lives."""

    def close(self) -> None:
        """Disconnect; trainers still running are the supervisor's to have stopped."""


def make_executor(settings: Settings) -> Executor:
    if settings.executor == "ray":
        from backend.executors.ray_executor import RayExecutor  # imports ray: only when asked

        return RayExecutor(settings)
    from backend.executors.local import LocalExecutor

    return LocalExecutor(settings)
