"""The `ray` executor: each trainer in a detached Ray actor on an existing cluster.

`causalwatch up --executor ray --ray-address HOST:PORT`. The actor (ray_actor.py) runs the
same `python -m trainer` a local run gets, with the run's config file, id, ingest URL and
ingest token; it streams to this backend over its websocket. The actor declares what the
trainer takes (`ray_num_cpus`, one GPU when the config's device is `cuda`), so Ray places
it on a node with room, and queues it while none has.

Run files live in the backend's runs directory, which every node must mount at the same
path (docs/scaling.md says why a shared volume and not streaming the files back).
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayError

from backend.executors import Ended, Launch, LaunchError
from backend.executors.ray_actor import TrainerActor
from backend.settings import Settings

logger = logging.getLogger("causalwatch.executors.ray")

ACTOR_CONCURRENCY = 4  # `wait` blocks one thread; `info` and `send_signal` need others
MAX_REASON_CHARS = 800


def actor_name(run_id: str) -> str:
    return f"run-{run_id}"


def ray_reason(err: BaseException) -> str:
    """Ray's own word on a dead actor, without its indented identity block."""
    lines = [line.strip() for line in str(err).splitlines()]
    kept = [line for line in lines if line and line.split(":")[0] not in (
        "class_name", "actor_id", "pid", "name", "namespace", "ip")]
    text = " ".join(kept)
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


class RayHandle:
    def __init__(self, run_id: str, actor: Any, start_timeout: float) -> None:
        self.run_id = run_id
        self.actor = actor
        self._info_ref = actor.info.remote()
        self._wait_ref = actor.wait.remote()
        self._info: dict[str, Any] | None = None
        self._since = time.monotonic()
        self._start_timeout = start_timeout
        self._placement_failure: str | None = None

    @property
    def pid(self) -> int | None:
        self._read_info()
        return None if self._info is None else int(self._info["pid"])

    def _read_info(self) -> None:
        if self._info is not None:
            return
        ready, _ = ray.wait([self._info_ref], timeout=0)
        if ready:
            try:
                self._info = ray.get(self._info_ref)
            except RayError:
                return  # the actor died: `poll` reports it from the wait ref
            logger.info("trainer of %s runs on Ray node %s (worker pid %s, trainer pid %s)",
                        self.run_id, self._info["node_ip"], self._info["worker_pid"],
                        self._info["pid"])

    def answers(self, timeout: float) -> bool:
        """Whether the actor is up and answering (a re-attached one may have just died)."""
        try:
            ray.get(self._info_ref, timeout=timeout)
        except GetTimeoutError:
            return True  # alive but slow (a busy node): `poll` follows it as usual
        except RayError:
            return False
        self._read_info()
        return True

    def poll(self) -> Ended | None:
        if self._placement_failure is not None:
            return Ended(-1, self._placement_failure)
        ready, _ = ray.wait([self._wait_ref], timeout=0)
        if not ready:
            self._read_info()
            if self._info is None and time.monotonic() - self._since > self._start_timeout:
                self._placement_failure = (
                    f"Ray placed no trainer within {self._start_timeout:g} s "
                    "(ray_start_timeout): no node had the CPUs/GPUs it asks for free"
                )
                self._kill_actor()
                return Ended(-1, self._placement_failure)
            return None
        self._read_info()  # where it ran, for the log, had no tick seen it alive
        try:
            return Ended(int(ray.get(self._wait_ref)))
        except RayError as err:  # RayActorError: its worker or node died, or it was killed
            return Ended(-1, f"Ray: {ray_reason(err)}")

    def terminate(self) -> None:
        # Graceful: the trainer's own SIGTERM handler ends its epoch and reports.
        self.actor.send_signal.remote(int(signal.SIGTERM))

    def kill(self) -> None:
        # The actor's worker dies and its trainer with it (PR_SET_PDEATHSIG): nothing on the
        # node can keep the trainer alive, whether or not it still answers.
        self._kill_actor()

    def release(self) -> None:
        self._kill_actor()

    def _kill_actor(self) -> None:
        try:
            ray.kill(self.actor, no_restart=True)
        except (RayError, ValueError):
            pass  # already gone


class RayExecutor:
    name = "ray"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._actor_class: Any = None
        # A node runs trainers with its Ray worker's interpreter, unless `python` was set:
        # the backend's own default path means nothing on another machine.
        self._python = settings.python if "python" in settings.model_fields_set else None

    def start(self) -> None:
        address = self.settings.ray_address
        try:
            ray.init(
                address=address, namespace=self.settings.ray_namespace,
                # Trainers' output goes to their run folder, not into the backend's log.
                log_to_driver=False, logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise RuntimeError(f"cannot connect to the Ray cluster at {address}: {err}") from err
        self._actor_class = ray.remote(TrainerActor)
        logger.info("trainers run on the Ray cluster at %s (namespace %s, %s CPUs in all)",
                    address, self.settings.ray_namespace,
                    ray.cluster_resources().get("CPU", 0))

    def close(self) -> None:
        # Detached actors outlive this driver: what still runs is re-attached next time.
        ray.shutdown()

    def launch(self, launch: Launch) -> RayHandle:
        options: dict[str, Any] = {
            "name": actor_name(launch.run_id),
            "namespace": self.settings.ray_namespace,
            "lifetime": "detached",
            "max_restarts": 0,  # a restarted actor would start the run over
            "max_concurrency": ACTOR_CONCURRENCY,
            "num_cpus": self.settings.ray_num_cpus,
            "num_gpus": launch.num_gpus,
        }
        env = dict(launch.env)
        if launch.num_gpus == 0:
            # Ray 2.60 leaves a node's GPUs visible to an actor that reserved none: `auto`
            # would take one another run reserved. Only a reserved GPU is ours.
            env["CUDA_VISIBLE_DEVICES"] = ""
        try:
            actor = self._actor_class.options(**options).remote(
                launch.trainer_args, env, str(launch.run_dir), launch.nice, self._python
            )
        except (RayError, ValueError) as err:  # ValueError: the name is taken
            raise LaunchError(f"Ray refused the trainer actor: {err}") from err
        return RayHandle(launch.run_id, actor, self.settings.ray_start_timeout)

    def reattach(self, run_id: str, pid: int | None) -> RayHandle | None:
        try:
            actor = ray.get_actor(actor_name(run_id), namespace=self.settings.ray_namespace)
        except ValueError:
            return None  # no such live actor: the run's trainer is gone
        handle = RayHandle(run_id, actor, self.settings.ray_start_timeout)
        return handle if handle.answers(timeout=30) else None
