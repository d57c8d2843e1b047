"""Trainer speed on this machine: seconds per epoch, a full run, peak memory, streaming cost.

Runs the real CLI (`python -m trainer`) as a subprocess, so start-up, data loading and file
writing are counted. Streaming runs send to a local websocket ingest server that stores and
acks every message (the test suite's stand-in for the backend). Medians are reported.

    .venv/bin/python bench/trainer_speed.py [--data PATH] [--repeats 3] [--epochs N]
        [--preset healthy]

Runs alternate plain / streaming / without the per-term gradient norms
(`grad_norms_per_term=false`), so the norms' cost is a ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED_SECONDS = (300.0, 420.0)  # the seed's full UCI run: 5–7 minutes


def _ingest_server():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "tests"))  # the test helpers, tests/utils
    from utils.ws_ingest_server import IngestServer

    return IngestServer().start()


def run_once(
    data: str | None, runs_dir: Path, run_id: str, epochs: int | None, backend: str | None,
    *, preset: str = "healthy", extra: tuple[str, ...] = (),
) -> dict[str, float]:
    argv = [sys.executable, "-m", "trainer", "--preset", preset, "--quiet",
            "--runs-dir", str(runs_dir), "--run-id", run_id, *extra]
    if data:
        argv += ["--data", data]
    if epochs:
        argv += ["--epochs", str(epochs)]
    if backend:
        argv += ["--backend", backend]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"trainer failed ({proc.returncode}): {proc.stderr[-2000:]}")
    lines = (runs_dir / run_id / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    epoch_seconds = [r["epoch_seconds"] for r in records]
    return {
        "wall": wall,
        "epochs": len(records),
        "train_seconds": sum(epoch_seconds),
        "sec_per_epoch": statistics.median(epoch_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = ROOT.parent / "shared" / "data" / "AirQualityUCI.csv"
    parser.add_argument("--data", default=os.environ.get("CAUSALWATCH_DATA")
                        or (str(default_data) if default_data.exists() else None))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="default: the preset's")
    parser.add_argument("--preset", default="healthy")
    args = parser.parse_args()
    no_terms = ("--set", "grad_norms_per_term=false")

    server = _ingest_server()
    plain: list[dict[str, float]] = []
    streamed: list[dict[str, float]] = []
    untermed: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        for i in range(args.repeats):
            plain.append(run_once(args.data, runs, f"plain-{i}", args.epochs, None,
                                  preset=args.preset))
            streamed.append(run_once(args.data, runs, f"stream-{i}", args.epochs, server.url,
                                     preset=args.preset))
            untermed.append(run_once(args.data, runs, f"noterms-{i}", args.epochs, None,
                                     preset=args.preset, extra=no_terms))
            print(f"repeat {i + 1}/{args.repeats}: plain {plain[-1]['wall']:.2f} s, "
                  f"streamed {streamed[-1]['wall']:.2f} s, without per-term norms "
                  f"{untermed[-1]['wall']:.2f} s", file=sys.stderr)
        stored = {f"stream-{i}": len(server.received(f"stream-{i}")) for i in range(args.repeats)}
    server.close()
    # Peak resident memory of the largest trainer child (Linux reports KiB).
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    wall, wall_s = med(plain, "wall"), med(streamed, "wall")
    train_s, train_ss = med(plain, "train_seconds"), med(streamed, "train_seconds")
    print("| figure | value |")
    print("|---|---|")
    print(f"| epochs run ({args.preset} preset) | {int(med(plain, 'epochs'))} |")
    print(f"| seconds per epoch (median) | {med(plain, 'sec_per_epoch'):.3f} |")
    print(f"| seconds per epoch without per-term gradient norms | "
          f"{med(untermed, 'sec_per_epoch'):.3f} |")
    print(f"| per-term gradient norms: cost as a ratio of epoch time | "
          f"{med(plain, 'sec_per_epoch') / med(untermed, 'sec_per_epoch'):.2f}× |")
    print(f"| full run, wall incl. start-up (median of {args.repeats}) | {wall:.1f} s |")
    print(f"| full run, training loop only | {train_s:.1f} s |")
    print(f"| speed-up vs the seed's 5–7 min | {SEED_SECONDS[0] / wall:.1f}×–"
          f"{SEED_SECONDS[1] / wall:.1f}× |")
    print(f"| peak RSS of a trainer process | {peak_mib:.0f} MiB |")
    print(f"| streamed run, wall (median) | {wall_s:.1f} s |")
    print(f"| streaming overhead, wall | {100 * (wall_s / wall - 1):+.1f}% |")
    print(f"| streaming overhead, training loop | {100 * (train_ss / train_s - 1):+.1f}% |")
    print(f"| messages stored by the ingest server per streamed run | {sorted(stored.values())} |")


if __name__ == "__main__":
    main()
