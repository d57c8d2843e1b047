"""What a trainer process loads: a short run or a probe is mostly start-up.

A synthetic run imports neither torch's compiler (trainer/adam.py stands in for
torch.optim.Adam, which loads it) nor pandas (only the file readers need it):
bench/trainer_startup.py measures what that saves.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ("torch._dynamo", "pandas")


def test_a_synthetic_run_imports_neither_torchs_compiler_nor_pandas() -> None:
    script = textwrap.dedent(f"""
        import json, sys
        from trainer.config import build_config
        from trainer.data import load_dataset
        from trainer.loop import train
        cfg = build_config("synthetic", {{"epochs": 2, "synthetic_samples": 200}})
        result = train(cfg, load_dataset(cfg), "startup")
        print(json.dumps([result.status, sorted(m for m in sys.modules if m in {HEAVY!r})]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    status, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert status == "completed", out.stdout + out.stderr
    assert loaded == [], f"a synthetic run loaded {loaded}"
