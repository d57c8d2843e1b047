"""The same sweep of short runs on the local executor and on a local Ray cluster.

12 members (lambda_sparse 0.01 / 0.02 × seeds 0–5, the synthetic preset, 5 epochs of 500
samples), one `POST /api/sweeps`, first against `causalwatch up` (local subprocesses),
then against `causalwatch up --executor ray` on a Ray head started here with the same CPU
count; both with `--max-runs` = that count, so both run the same number of trainers at
once and the difference is the executor's.

Reported per executor: the wall time from the first POST to the last run finished, and per
run its overhead: (finished_at − started_at) − the trainer's own training seconds, i.e.
what starting the trainer (process, imports, data; on Ray also the actor and its worker)
and learning its end cost. Ray's overhead per task is the difference of the two means.

Run: `.venv/bin/python bench/sweep.py [--out FILE]` (needs the ray extra).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import DEFAULT_DATA, ROOT, Backend, drop_temp_dir, loadavg

# The Ray head helper lives with the test helpers (tests/utils/ray_head.py).
sys.path.insert(0, str(ROOT / "tests"))
from utils.ray_head import RayHead

SWEEP = {"preset": "synthetic", "grid": {"lambda_sparse": [0.01, 0.02]}, "seeds": "0-5",
         "overrides": {"epochs": 5, "synthetic_samples": 500}}
MEMBERS = 12
TIMEOUT = 600.0


def run_sweep(backend: Backend) -> dict[str, Any]:
    t0 = time.monotonic()
    resp = backend.client.post("/api/sweeps", json=SWEEP)
    resp.raise_for_status()
    ids = [member["id"] for member in resp.json()["members"]]
    assert len(ids) == MEMBERS, ids
    runs: list[dict[str, Any]] = []
    while time.monotonic() - t0 < TIMEOUT:
        runs = [backend.client.get(f"/api/runs/{run_id}").json() for run_id in ids]
        if all(r["status"] in ("completed", "stopped", "failed") for r in runs):
            break
        time.sleep(0.2)
    wall = time.monotonic() - t0
    bad = [f"{r['id']}: {r['status']} {r['status_reason']}" for r in runs
           if r["status"] != "completed"]
    if bad:
        raise SystemExit("sweep members did not complete:\n" + "\n".join(bad))
    overheads = []
    for r in runs:
        span = (datetime.fromisoformat(r["finished_at"])
                - datetime.fromisoformat(r["started_at"])).total_seconds()
        overheads.append(span - float(r["summary"]["seconds"]))
    return {"wall": wall, "overheads": overheads,
            "train": [float(r["summary"]["seconds"]) for r in runs]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpus", type=int, default=2, help="trainers at once (and Ray's CPUs)")
    p.add_argument("--out", help="also write the markdown table here")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = p.parse_args()
    data = DEFAULT_DATA if DEFAULT_DATA.is_file() else None
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-sweep-"))
    results: dict[str, dict[str, Any]] = {}
    load_start = loadavg()
    try:
        local = Backend(tmp / "local", data, max_runs=args.cpus)
        (tmp / "local").mkdir()
        local.start()
        try:
            results["local"] = run_sweep(local)
        finally:
            local.stop()
        head = RayHead(num_cpus=args.cpus)
        t = time.monotonic()
        head.start()
        head_seconds = time.monotonic() - t
        try:
            os.environ.update(CAUSALWATCH_EXECUTOR="ray", CAUSALWATCH_RAY_ADDRESS=head.address)
            ray_backend = Backend(tmp / "ray", data, max_runs=args.cpus)
            (tmp / "ray").mkdir()
            ray_backend.start()
            try:
                results["ray"] = run_sweep(ray_backend)
            finally:
                ray_backend.stop()
        finally:
            for key in ("CAUSALWATCH_EXECUTOR", "CAUSALWATCH_RAY_ADDRESS"):
                os.environ.pop(key, None)
            head.stop()
    finally:
        drop_temp_dir(tmp, args.keep)

    lo, ra = results["local"], results["ray"]
    extra = statistics.mean(ra["overheads"]) - statistics.mean(lo["overheads"])
    rows = [
        ("members", f"{MEMBERS} (lambda_sparse 0.01/0.02 × seeds 0–5; synthetic, "
         "5 epochs × 500 samples; one POST /api/sweeps)"),
        ("trainers at once", f"{args.cpus} (--max-runs; Ray head --num-cpus {args.cpus})"),
        ("wall time local / Ray", f"{lo['wall']:.1f} s / {ra['wall']:.1f} s"),
        ("ratio Ray / local", f"{ra['wall'] / lo['wall']:.2f}"),
        ("training seconds per run, mean local / Ray",
         f"{statistics.mean(lo['train']):.2f} / {statistics.mean(ra['train']):.2f} s"),
        ("overhead per run (start → end − training), mean local / Ray",
         f"{statistics.mean(lo['overheads']):.2f} / {statistics.mean(ra['overheads']):.2f} s "
         f"(max {max(lo['overheads']):.2f} / {max(ra['overheads']):.2f})"),
        ("Ray's overhead per task (difference of the means)", f"{extra:+.2f} s"),
        ("Ray head start (not in the wall time)", f"{head_seconds:.1f} s"),
        ("load average at start", " / ".join(f"{x:.1f}" for x in load_start)),
    ]
    table = "| figure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
