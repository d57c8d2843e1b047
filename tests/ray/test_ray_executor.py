"""`causalwatch up --executor ray` against a real Ray head on this machine (no mock).

Each test starts its own backend (a real `causalwatch up` subprocess) pointed at the
module's Ray cluster; trainers are Ray actors on that cluster's 2 CPUs, running the real
`python -m trainer` and streaming back over the ingest websocket.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from utils.backend_server import BackendServer, Trainer
from utils.ray_head import RayHead
from utils.stream_trainer import EPOCH_SECONDS_ENV

pytestmark = pytest.mark.long

SHORT = {"epochs": 4, "synthetic_samples": 300}  # a few seconds of training
LONG = {"epochs": 500, "synthetic_samples": 2000, "patience": 0}  # runs until stopped

StartRayBackend = Callable[..., BackendServer]


@pytest.fixture
def start_ray_backend(
    tmp_path: Path, uci_csv_path: Path, ray_head: RayHead
) -> Iterator[StartRayBackend]:
    started: list[BackendServer] = []

    def start(max_probes: int = 0, trainer: Trainer = "real", **env: str) -> BackendServer:
        # A stand-in (utils/stream_trainer.py) reaches the actors as CAUSALWATCH_PYTHON, the
        # interpreter a node runs trainers with when it is set; paced like a real epoch.
        pace = {EPOCH_SECONDS_ENV: "0.3"} if trainer == "stream" else {}
        server = BackendServer(tmp_path, uci_csv_path, max_probes=max_probes, trainer=trainer,
                               env={"CAUSALWATCH_EXECUTOR": "ray",
                                    "CAUSALWATCH_RAY_ADDRESS": ray_head.address, **pace, **env})
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def placement(backend: BackendServer, run_id: str, timeout: float = 60) -> dict[str, int]:
    """Where the backend says Ray put the trainer (its log line once the actor is up)."""
    pattern = re.compile(
        rf"trainer of {re.escape(run_id)} runs on Ray node \S+ "
        r"\(worker pid (\d+), trainer pid (\d+)\)"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = pattern.search(backend.log_text())
        if match:
            return {"worker": int(match[1]), "trainer": int(match[2])}
        time.sleep(0.2)
    raise AssertionError(f"no Ray placement logged for {run_id}: {backend.log_text()[-2000:]}")


def trainer_under_ray(run_id: str) -> psutil.Process:
    """The run's `python -m trainer` process, checked to be a child of a Ray worker."""
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "trainer" in cmd and run_id in cmd:
            parent = proc.parent()
            assert parent is not None and parent.cmdline()[0].startswith("ray::"), (
                f"trainer of {run_id} is not a Ray worker's child: {parent}")
            return proc
    raise AssertionError(f"no trainer process for {run_id}")


def gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_a_run_on_ray_completes_with_every_epoch_stored_once(
    start_ray_backend: StartRayBackend,
) -> None:
    backend = start_ray_backend()
    run = backend.create("synthetic", **SHORT)
    where = placement(backend, run["id"])
    done = backend.wait_finished(run["id"], timeout=120)
    assert done["status"] == "completed", done["status_reason"]
    stored = backend.metrics(run["id"])
    assert [r["epoch"] for r in stored] == [1, 2, 3, 4]
    assert stored == jsonl(backend.runs_dir / run["id"] / "metrics.jsonl")
    events = backend.client.get(f"/api/runs/{run['id']}/events").json()
    assert [e["status"] for e in events] == ["queued", "running", "completed"]
    log = (backend.runs_dir / run["id"] / "train.log").read_text()
    assert "device cpu (config device auto)" in log  # no GPU on this cluster
    # Its detached actor is released once the run is over: the worker holds no CPU.
    assert gone(where["worker"]), "the trainer's Ray actor outlived its run"


def test_stop_on_ray_is_graceful(start_ray_backend: StartRayBackend) -> None:
    backend = start_ray_backend(trainer="stream")
    run = backend.create("synthetic", **LONG)
    backend.wait_for(run["id"], lambda r: (r["last_epoch"] or 0) >= 2, timeout=120)
    trainer = trainer_under_ray(run["id"])
    # It reserved no GPU (device auto): none it could see would be its own.
    assert trainer.environ().get("CUDA_VISIBLE_DEVICES") == ""
    resp = backend.client.post(f"/api/runs/{run['id']}/stop")
    assert resp.status_code == 200
    stopped = backend.wait_finished(run["id"], timeout=30)
    assert stopped["status"] == "stopped", stopped["status_reason"]
    assert stopped["status_reason"] == "stop requested; trainer stopped"
    log = (backend.runs_dir / run["id"] / "train.log").read_text()
    assert "STOPPED: stop requested after epoch" in log  # it ended its epoch and said so
    assert gone(trainer.pid)
    kept = backend.metrics(run["id"])
    assert [r["epoch"] for r in kept] == list(range(1, len(kept) + 1))


def test_a_trainer_deaf_to_the_stop_is_killed_with_its_actor(
    start_ray_backend: StartRayBackend,
) -> None:
    # Wide decoders make one epoch take seconds (~80 steps of ~50 ms on this machine): the
    # trainer cannot end it within the 1 s stop timeout.
    backend = start_ray_backend(CAUSALWATCH_STOP_TIMEOUT="1")
    run = backend.create("synthetic", epochs=3, synthetic_samples=10_000, hidden_dim=1024,
                         latent_dim=128, patience=0)
    log = backend.runs_dir / run["id"] / "train.log"
    backend.wait_for(run["id"], lambda r: log.exists() and "device cpu" in log.read_text(),
                     timeout=120)
    where = placement(backend, run["id"])
    assert backend.client.post(f"/api/runs/{run['id']}/stop").status_code == 200
    stopped = backend.wait_finished(run["id"], timeout=30)
    assert stopped["status"] == "stopped"
    assert stopped["status_reason"] == "stop requested; trainer killed after the stop timeout"
    assert "STOPPED" not in log.read_text()  # it never got to end its epoch
    assert gone(where["worker"]) and gone(where["trainer"])


def test_probes_run_on_ray_too(start_ray_backend: StartRayBackend) -> None:
    backend = start_ray_backend(max_probes=1)
    # Every step clipped: clip_high fires at epoch 11 and queues probes of its fixes.
    run = backend.create("synthetic", grad_clip_norm=0.01, epochs=14, synthetic_samples=300,
                         batch_size=64, eval_every=2, patience=0)

    def probes() -> list[dict[str, Any]]:
        return list(backend.client.get(f"/api/runs/{run['id']}/probes").json()["runs"])

    backend.wait_for(run["id"], lambda _r: any(
        p["status"] in ("completed", "failed") for p in probes()), timeout=150)
    probe = next(p for p in probes() if p["status"] in ("completed", "failed"))
    assert probe["kind"] == "probe" and probe["status"] == "completed", probe
    placement(backend, probe["id"], timeout=1)  # the backend placed it on Ray


def test_a_killed_ray_worker_fails_the_run_with_rays_reason(
    start_ray_backend: StartRayBackend,
) -> None:
    backend = start_ray_backend(trainer="stream")
    run = backend.create("synthetic", **LONG)
    running = backend.wait_for(run["id"], lambda r: (r["last_epoch"] or 0) >= 2, timeout=120)
    trainer = trainer_under_ray(run["id"])
    worker = trainer.parent()
    assert worker is not None
    worker.send_signal(signal.SIGKILL)
    failed = backend.wait_finished(run["id"], timeout=30)
    assert failed["status"] == "failed"
    assert failed["status_reason"].startswith("Ray: The actor died unexpectedly"), failed
    assert "worker process has died" in failed["status_reason"]
    # The trainer dies with its worker: nothing streams into a run marked failed.
    assert gone(trainer.pid, timeout=5), "the trainer outlived its Ray worker"
    kept = backend.metrics(run["id"])
    assert len(kept) >= running["last_epoch"]
    assert [r["epoch"] for r in kept] == list(range(1, len(kept) + 1))


def test_a_restarted_backend_reattaches_a_live_ray_run(
    start_ray_backend: StartRayBackend,
) -> None:
    backend = start_ray_backend(trainer="stream")
    run = backend.create("synthetic", epochs=30, synthetic_samples=1000, patience=0)
    backend.wait_for(run["id"], lambda r: (r["last_epoch"] or 0) >= 2, timeout=120)
    trainer = trainer_under_ray(run["id"])
    backend.kill()  # SIGKILL: no shutdown hook stops the trainer
    time.sleep(1.0)  # it trains on, buffering what nobody acknowledges
    assert trainer.is_running()
    backend.start()
    assert f"re-attached to trainer of {run['id']} (ray" in backend.log_text()
    done = backend.wait_finished(run["id"], timeout=120)
    assert done["status"] == "completed", done["status_reason"]
    stored = backend.metrics(run["id"])
    assert [r["epoch"] for r in stored] == list(range(1, 31)), "every epoch exactly once"
    assert stored == jsonl(backend.runs_dir / run["id"] / "metrics.jsonl")


def test_a_cuda_run_asks_ray_for_a_gpu_and_fails_when_no_node_has_one(
    start_ray_backend: StartRayBackend,
) -> None:
    backend = start_ray_backend(CAUSALWATCH_RAY_START_TIMEOUT="3")
    run = backend.create("synthetic", device="cuda", **SHORT)
    failed = backend.wait_finished(run["id"], timeout=30)
    assert failed["status"] == "failed"
    assert failed["status_reason"].startswith("Ray placed no trainer within 3 s"), failed
    assert not (backend.runs_dir / run["id"] / "train.log").exists(), "it never started"


def test_a_sweep_completes_on_ray_an_actor_per_member(start_ray_backend: StartRayBackend) -> None:
    backend = start_ray_backend(trainer="stream")
    # Four members on the default two slots: two wait in the queue for a free actor.
    resp = backend.client.post("/api/sweeps", json={
        "preset": "synthetic", "grid": {"lambda_sparse": [0.01, 0.02]}, "seeds": "0-1",
        "overrides": {"epochs": 3, "synthetic_samples": 200},
    })
    assert resp.status_code == 201, resp.text
    sweep = resp.json()
    assert len(sweep["members"]) == 4
    for member in sweep["members"]:
        done = backend.wait_finished(member["id"], timeout=120)
        assert done["status"] == "completed", done["status_reason"]
        assert [r["epoch"] for r in backend.metrics(member["id"])] == [1, 2, 3]
        placement(backend, member["id"], timeout=1)  # each one a Ray actor
    final = backend.client.get(f"/api/sweeps/{sweep['id']}").json()
    assert final["best"] in {m["id"] for m in sweep["members"]}
