"""A short trainer process's CPU: the trainer's own Adam against torch.optim.Adam.

`torch.optim.Adam` imports torch's compiler (`torch._dynamo`) on first use; trainer/adam.py
computes the same steps without it. A probe is a short run, several per alert, so its
start-up is a large part of it. This runs `python -m trainer` (the real CLI: imports, data
loading, run files) on a probe-sized run, alternating the trainer as it is with the same
trainer on torch.optim.Adam, and prints the median CPU of each and their ratio.

    .venv/bin/python bench/trainer_startup.py [--data PATH] [--epochs 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# The trainer with torch's Adam put back: the loop calls `Adam(groups, lr=...)`,
# `zero_grad()` and `step()`, all of which torch.optim.Adam answers the same way. The
# one-thread settings `main()` makes come first: torch reads them when it is imported.
TORCH_ADAM = """
import sys
from trainer.cli import main, one_math_thread
one_math_thread()
import torch, trainer.loop
trainer.loop.Adam = torch.optim.Adam
sys.exit(main(sys.argv[1:]))
"""


def cpu_of(argv: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("CAUSALWATCH_DATA"),
                        help="UCI CSV (default $CAUSALWATCH_DATA, else ../shared/data)")
    parser.add_argument("--epochs", type=int, default=10, help="a probe's PROBE_EPOCHS")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    data = args.data or str(root.parent / "shared" / "data" / "AirQualityUCI.csv")

    times: dict[str, list[float]] = {"trainer.adam": [], "torch.optim.Adam": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for name, head in (("trainer.adam", ["-m", "trainer"]),
                               ("torch.optim.Adam", ["-c", TORCH_ADAM])):
                argv = [sys.executable, *head, "--preset", "standard", "--data", data,
                        "--epochs", str(args.epochs), "--set", "patience=0", "--quiet",
                        "--runs-dir", tmp, "--run-id", f"{name}-{i}"]
                times[name].append(cpu_of(argv))
    ours, theirs = (statistics.median(times[k]) for k in times)
    print(f"standard on UCI, {args.epochs} epochs, median of {args.repeats} (CPU seconds):")
    for name, values in times.items():
        print(f"  {name:18s} {statistics.median(values):5.2f} s  "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    print(f"  trainer.adam / torch.optim.Adam = {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
