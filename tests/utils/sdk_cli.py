"""The real `causalwatch` CLI in a subprocess, as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli_env(**extra: str) -> dict[str, str]:
    """The test's environment without the developer's CAUSALWATCH_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAUSALWATCH_")}
    env.update(extra)
    return env


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "backend.cli", *args]


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_argv(*args), cwd=cwd, env=env or cli_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )
