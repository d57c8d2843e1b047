"""docs/sdk.md's whole script, run as written against a real server: it ends in a red flag."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from utils.backend_server import BackendServer
from utils.sdk_cli import cli_env

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
MARKER = "<!-- sdk-example"


def example_script() -> str:
    text = DOC.read_text()
    after = text[text.index(MARKER):]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match, "docs/sdk.md lost its example block"
    return match.group(1)


def test_the_docs_loop_reaches_a_red_flag(sdk_backend: BackendServer, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(example_script())
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
        env=cli_env(CAUSALWATCH_SERVER=sdk_backend.url),
    )
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.split()[-1]
    run = sdk_backend.run(run_id)
    assert run["status"] == "completed" and run["name"] == "notears-lite"
    records = sdk_backend.metrics(run_id)
    assert len(records) == 30 and all("train/mse" in r["custom"] for r in records)
    alerts = sdk_backend.client.get(f"/api/runs/{run_id}/alerts").json()
    flag = next(a for a in alerts if a["rule"] == "regularizers_silent")
    assert flag["epoch"] == 3  # as the page says
    assert sdk_backend.client.get(f"/api/runs/{run_id}/graph").json()["epoch"] == 30
    # The run folder sits where the script ran, marked synced: nothing to upload later.
    assert (tmp_path / "causalwatch-runs" / run_id / "synced").is_file()
