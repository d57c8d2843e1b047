"""How the `healthy` preset was chosen: a grid on synthetic data only, never on UCI.

Each candidate is the `healthy` preset with a few fields changed (an empty change is the
preset itself), trained on 13-node ER
DAGs (13 expected edges, 2000 samples, standardized) with linear and MLP mechanisms, on
selection seeds disjoint from the benchmark's (bench/causal_quality.py uses 0–4). The
score is directed F1 at the label-free best checkpoint, the graph a user would keep.
Prints one markdown row per candidate, best first; docs/presets.md records the outcome.

    .venv/bin/python bench/select_healthy.py [--seeds 101 102 103] [--epochs 40] [--quick]
        [--pick 0 2]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from typing import Any

import torch

from trainer.config import build_config
from trainer.data import load_dataset
from trainer.loop import train

SYNTHETIC = {"dataset": "synthetic", "synthetic_nodes": 13, "synthetic_edges": 13,
             "standardize": True}
# The second round (docs/presets.md has the first, made with plain MSE): each row changes
# the final preset's fields; the last row is the first round's winner.
CANDIDATES: list[dict[str, Any]] = [
    {},
    {"recon_weighting": "equal"},
    {"adjacency_lr_scale": 20.0},
    {"adjacency_lr_scale": 20.0, "lambda_acyclic": 0.3},
    {"recon_weighting": "equal", "adjacency_lr_scale": 20.0, "lambda_acyclic": 0.1},
]


def score(overrides: dict[str, Any], mechanism: str, seed: int) -> tuple[float, float]:
    """(F1 at the best checkpoint, F1 at the last epoch) of one training run."""
    cfg = build_config("healthy", {**SYNTHETIC, **overrides, "seed": seed,
                                   "synthetic_mechanism": mechanism})
    result = train(cfg, load_dataset(cfg), f"select-{seed}")
    best = (result.best_record or {}).get("f1") or 0.0
    last = (result.last_record or {}).get("f1") or 0.0
    return best, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    parser.add_argument("--quick", action="store_true", help="one seed, last 4 candidates")
    parser.add_argument("--pick", type=int, nargs="+", help="only these candidates (0-based)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = args.seeds[:1] if args.quick else args.seeds
    candidates = [dict(c) for i, c in enumerate(CANDIDATES) if not args.pick or i in args.pick]
    if args.quick:
        candidates = candidates[-4:]
    rows = []
    for overrides in candidates:
        if args.epochs:
            overrides["epochs"] = args.epochs
        t0 = time.perf_counter()
        per: dict[str, list[float]] = {"linear": [], "mlp": [], "last": []}
        for mechanism, seed in itertools.product(("linear", "mlp"), seeds):
            best, last = score(overrides, mechanism, seed)
            per[mechanism].append(best)
            per["last"].append(last)
        both = per["linear"] + per["mlp"]
        rows.append((statistics.mean(both), overrides, per, time.perf_counter() - t0))
        print(f"  {overrides}: F1 {statistics.mean(both):.3f}", flush=True)
    rows.sort(key=lambda r: -r[0])
    print("\n| candidate | F1 linear | F1 MLP | F1 both | F1 last epoch | seconds |")
    print("|---|---|---|---|---|---|")
    for mean_f1, overrides, per, seconds in rows:
        print(f"| {overrides} | {statistics.mean(per['linear']):.2f} | "
              f"{statistics.mean(per['mlp']):.2f} | {mean_f1:.2f} | "
              f"{statistics.mean(per['last']):.2f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
