"""Paths given to `causalwatch up` are pinned to the start directory and checked at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.settings import Settings

_PATH_ENV = ("CAUSALWATCH_DATA", "CAUSALWATCH_DATA_DIR", "CAUSALWATCH_RUNS_DIR",
             "CAUSALWATCH_DB", "DATABASE_URL")


@pytest.fixture
def start_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in _PATH_ENV:
        monkeypatch.delenv(name, raising=False)
    start = tmp_path / "start"
    start.mkdir()
    monkeypatch.chdir(start)
    return start


def test_relative_paths_become_absolute_against_the_start_dir(start_dir: Path) -> None:
    (start_dir.parent / "shared").mkdir()
    (start_dir.parent / "shared" / "air.csv").write_text("a,b\n1,2\n")
    (start_dir / "mydata").mkdir()
    settings = Settings(
        data="../shared/air.csv", data_dir="mydata", runs_dir="somewhere/runs",
        database_url="sqlite:///db.sqlite",
    )
    assert settings.data == str(start_dir.parent / "shared" / "air.csv")
    assert settings.data_dir == start_dir / "mydata"
    assert settings.runs_dir == start_dir / "somewhere" / "runs"
    assert settings.db_url == f"sqlite:///{start_dir / 'db.sqlite'}"
    assert Settings().runs_dir == start_dir / "runs"  # the default too
    assert Settings().db_url == f"sqlite:///{start_dir / 'runs' / 'causalwatch.db'}"


def test_env_paths_are_resolved_too(start_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (start_dir / "air.csv").write_text("a,b\n1,2\n")
    monkeypatch.setenv("CAUSALWATCH_DATA", "air.csv")
    assert Settings().data == str(start_dir / "air.csv")


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--data", "../missing.csv"], {}, "--data: file not found: "),
        ([], {"CAUSALWATCH_DATA": "missing.csv"}, "CAUSALWATCH_DATA: file not found: "),
        (["--data-dir", "nodir"], {}, "--data-dir: folder not found: "),
        (["--runs-dir", "afile"], {}, "--runs-dir: not a folder: "),
        (["--db", "sqlite:///nodir/x.db"], {}, "--db: folder of the SQLite file not found: "),
        ([], {"DATABASE_URL": "sqlite:///nodir/x.db"}, "DATABASE_URL: folder of the SQLite"),
    ],
)
def test_bad_paths_exit_2_naming_option_and_path(
    start_dir: Path, argv: list[str], env: dict[str, str], expected: str
) -> None:
    (start_dir / "afile").write_text("")
    # A subprocess, as users run it: `up` refuses before it binds a port.
    proc = subprocess.run(
        [sys.executable, "-m", "backend.cli", "up", "--no-dashboard", "--port", "0", *argv],
        cwd=start_dir, capture_output=True, text=True, timeout=60, check=False,
        env={**{k: v for k, v in os.environ.items() if k not in _PATH_ENV}, **env},
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert f"causalwatch up: {expected}" in err
    assert str(start_dir) in err or str(start_dir.parent) in err  # the resolved path is shown
    assert "Traceback" not in err
