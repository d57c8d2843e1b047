"""Sweeps: the grid × seeds expansion, POST/GET /api/sweeps and `causalwatch sweep`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from utils.app_client import AppBackend
from utils.backend_server import BackendServer

from backend.sweeps import MAX_MEMBERS, SweepError, expand, parse_grid, parse_seeds

TINY = {"epochs": 2, "synthetic_samples": 200}


def test_the_grid_times_the_seeds_in_order() -> None:
    grid = parse_grid(["lambda_sparse=0.01,0.02", "sparsify_method=topk,sigmoid"])
    assert grid == {"lambda_sparse": [0.01, 0.02], "sparsify_method": ["topk", "sigmoid"]}
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    members = expand(grid, [0, 1])
    assert len(members) == 8
    assert members[:3] == [
        {"lambda_sparse": 0.01, "sparsify_method": "topk", "seed": 0},
        {"lambda_sparse": 0.01, "sparsify_method": "topk", "seed": 1},
        {"lambda_sparse": 0.01, "sparsify_method": "sigmoid", "seed": 0},
    ]


def test_random_search_draws_distinct_combinations_of_the_grid() -> None:
    grid = {"lambda_sparse": [0.01, 0.02, 0.05], "latent_dim": [8, 16, 32, 64]}
    drawn = expand(grid, [3], samples=5, sample_seed=1)
    assert len(drawn) == 5 and all(m["seed"] == 3 for m in drawn)
    combos = {(m["lambda_sparse"], m["latent_dim"]) for m in drawn}
    assert len(combos) == 5
    assert combos <= {(a, b) for a in grid["lambda_sparse"] for b in grid["latent_dim"]}
    assert expand(grid, [3], samples=5, sample_seed=1) == drawn  # reproducible
    assert len(expand(grid, [0], samples=100)) == 12  # never more than the grid


@pytest.mark.parametrize(("call", "field"), [
    (lambda: parse_grid(["lambda_sparse"]), "grid"),
    (lambda: parse_seeds("4-1"), "seeds"),
    (lambda: parse_seeds("0-99999999"), "seeds"),
    (lambda: expand({"nope": [1]}, [0]), "grid.nope"),
    (lambda: expand({"seed": [1, 2]}, [0]), "grid.seed"),
    # Refused by counting, before a product of 10^40 combinations is built.
    (lambda: expand({f: list(range(10)) for f in ("latent_dim", "hidden_dim", "epochs",
                     "batch_size")} | {"lambda_sparse": [0.1] * 10}, list(range(MAX_MEMBERS))),
     "grid"),
])
def test_bad_sweeps_are_refused_naming_the_option(call, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SweepError) as err:
        call()
    assert err.value.field == field


def test_a_sweep_queues_its_members_as_one_named_group(
    stream_backend: BackendServer,
) -> None:
    backend = stream_backend
    resp = backend.client.post("/api/sweeps", json={
        "preset": "synthetic", "grid": {"lambda_sparse": [0.01, 0.02]}, "seeds": "0-1",
        "overrides": TINY,
    })
    assert resp.status_code == 201, resp.text
    sweep = resp.json()
    members = sweep["members"]
    assert [(m["config"]["lambda_sparse"], m["config"]["seed"]) for m in members] == [
        (0.01, 0), (0.01, 1), (0.02, 0), (0.02, 1)]
    assert all(m["config"]["epochs"] == 2 and m["kind"] == "run" for m in members)
    assert members[0]["name"] == f"sweep {sweep['id']}: lambda_sparse=0.01 seed=0"
    assert "ingest_token" not in members[0]
    for member in members:
        done = backend.wait_finished(member["id"], timeout=120)
        assert done["status"] == "completed", done["status_reason"]
    again = backend.client.get(f"/api/sweeps/{sweep['id']}").json()
    assert [m["id"] for m in again["members"]] == [m["id"] for m in members]
    best = min(again["members"], key=lambda m: m["summary"]["best_val_recon"])
    assert again["best"] == best["id"]


def test_a_bad_member_refuses_the_whole_sweep_naming_the_field(
    app_backend: AppBackend,
) -> None:
    backend = app_backend
    bad = backend.client.post("/api/sweeps", json={
        "preset": "synthetic", "grid": {"lambda_sparse": [0.01, -1]}, "overrides": TINY})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "grid.lambda_sparse"
    unknown = backend.client.post("/api/sweeps", json={"preset": "synthetic",
                                                       "grid": {"nope": [1]}})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "grid.nope"
    override = backend.client.post("/api/sweeps", json={
        "preset": "synthetic", "grid": {"lambda_sparse": [0.01]}, "overrides": {"epochs": 0}})
    assert override.json()["detail"][0]["field"] == "overrides.epochs"
    assert backend.client.get("/api/runs").json()["count"] == 0, "nothing half-queued"
    assert backend.client.get("/api/sweeps/feedf00d").status_code == 404


def test_the_cli_queues_a_sweep_and_waits_for_its_results(
    stream_backend: BackendServer,
) -> None:
    backend = stream_backend
    done = subprocess.run(
        [sys.executable, "-m", "backend.cli", "sweep", "--preset", "synthetic",
         "--grid", "lambda_sparse=0.01,0.02", "--seeds", "0", "--set", "epochs=2",
         "--set", "synthetic_samples=200", "--server", backend.url, "--wait"],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("sweep ") and "2 members queued" in lines[0]
    results = [line for line in lines if line.strip().startswith("completed")]
    assert len(results) == 2 and sum("← best" in line for line in results) == 1
    bad = subprocess.run(
        [sys.executable, "-m", "backend.cli", "sweep", "--grid", "lambda_sparse=-1",
         "--server", backend.url], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "grid.lambda_sparse" in bad.stderr
