"""Trainers sharing a machine: one math thread each (the default) against thread pools.

`trainer/cli.py` sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS to 1 unless
the user set them: the model's matrices are tiny, and a pool per trainer only spins against
the other trainers'. This starts N trainers at once (`python -m trainer`, synthetic preset,
short runs, no backend), first as they run by default, then with every pool as wide as the
machine (the variables set to its CPU count, what numpy and torch pick by themselves), in
alternation, and reports the wall time until the last one ends and the CPU they used.

    .venv/bin/python bench/concurrent_trainers.py [--trainers 10] [--repeats 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import loadavg

from trainer.cli import SINGLE_THREAD_ENV


def run_batch(trainers: int, epochs: int, pools: bool, runs_dir: Path) -> tuple[float, float]:
    """(wall seconds until the last trainer ended, CPU seconds of the trainers)."""
    env = {k: v for k, v in os.environ.items() if k not in SINGLE_THREAD_ENV}
    if pools:
        env |= dict.fromkeys(SINGLE_THREAD_ENV, str(os.cpu_count() or 1))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "trainer", "--preset", "synthetic", "--epochs", str(epochs),
             "--set", "synthetic_samples=500", "--set", f"seed={i}", "--quiet",
             "--runs-dir", str(runs_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        for i in range(trainers)
    ]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(codes):
        raise SystemExit(f"a trainer failed: exit codes {codes}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainers", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="causalwatch-bench-") as tmp:
        for repeat in range(args.repeats):
            for pools in (False, True):
                wall, cpu = run_batch(args.trainers, args.epochs, pools, Path(tmp) / "runs")
                results[pools].append((wall, cpu))
                print(f"repeat {repeat + 1}: {'pools' if pools else 'one thread'}: "
                      f"{wall:.1f} s wall, {cpu:.1f} s CPU (load {loadavg()[0]:.1f})", flush=True)

    print(f"\n{args.trainers} trainers at once on {os.cpu_count()} CPUs, "
          f"{args.epochs} epochs each; medians of {args.repeats}:")
    walls = {k: statistics.median(w for w, _ in v) for k, v in results.items()}
    cpus = {k: statistics.median(c for _, c in v) for k, v in results.items()}
    print(f"  one math thread each (default): {walls[False]:.1f} s wall, {cpus[False]:.1f} s CPU")
    print(f"  pools as wide as the machine:   {walls[True]:.1f} s wall, {cpus[True]:.1f} s CPU")
    print(f"  ratio pools / default: wall {walls[True] / walls[False]:.2f}x, "
          f"CPU {cpus[True] / cpus[False]:.2f}x")


if __name__ == "__main__":
    main()
