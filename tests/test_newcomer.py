"""What a newcomer does: clone, `make run`, start a UCI run from the API, see it complete.

The clone is of the committed HEAD, with `../shared/data` beside it exactly as the Makefile
expects, so a path that only works from the developer's own folder fails here. Installing
into the clone would take minutes; instead its `.venv` borrows this interpreter's installed
dependencies through a `.pth` file and puts the clone's own root first, so the backend, the
dashboard and the trainers all run the clone's code (checked below, not assumed).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from utils.processes import wait_until_answers

ROOT = Path(__file__).resolve().parents[1]
# Never inherited by the newcomer's shell: each would bypass what `make run` sets up.
_SCRUBBED_ENV = (
    "CAUSALWATCH_DATA", "CAUSALWATCH_DATA_DIR", "CAUSALWATCH_RUNS_DIR", "CAUSALWATCH_DB",
    "CAUSALWATCH_TOKEN", "DATABASE_URL", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME",
    "PYTHONDONTWRITEBYTECODE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()


def _borrowed_venv(clone: Path) -> None:
    """`.venv` in the clone, as `make` would leave it, without installing anything.

    `python -m venv` gives it its own interpreter; one `.pth` puts the clone's root on
    sys.path ahead of the borrowed site-packages (which are added as a plain path, so this
    project's editable-install hook, pointing at the original tree, is never loaded).
    """
    venv = clone / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = site / "site-packages"
    borrowed = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    lines = [str(clone), *borrowed]
    (site / "00-causalwatch-clone.pth").write_text("".join(f"{line}\n" for line in lines))
    # The console script pip would write for `causalwatch = "backend.cli:main"`.
    script = venv / "bin" / "causalwatch"
    script.write_text(
        f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom backend.cli import main\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    script.chmod(0o755)
    # Newer than pyproject.toml: make considers the install done.
    stamp = venv / ".installed-dev"
    stamp.touch()
    later = (clone / "pyproject.toml").stat().st_mtime + 60
    os.utime(stamp, (later, later))


@pytest.fixture
def newcomer_clone(tmp_path: Path, uci_csv_path: Path) -> Path:
    parent = tmp_path / "work"
    parent.mkdir()
    clone = parent / "causalwatch"
    _git("clone", "--quiet", str(ROOT), str(clone), cwd=parent)
    assert _git("rev-parse", "HEAD", cwd=clone) == _git("rev-parse", "HEAD", cwd=ROOT)
    (parent / "shared").mkdir()
    (parent / "shared" / "data").symlink_to(uci_csv_path.parent, target_is_directory=True)
    _borrowed_venv(clone)
    return clone


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}


@pytest.fixture
def make_run(newcomer_clone: Path) -> Iterator[tuple[Path, str, str, Path]]:
    """`make run` in the clone on free ports; the whole process group ends with the test."""
    clone = newcomer_clone
    port, dashboard_port = _free_port(), _free_port()
    log_path = clone.parent / "make-run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "run", "HOST=127.0.0.1", f"PORT={port}", f"DASHBOARD_PORT={dashboard_port}"],
            cwd=clone, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=_env(), start_new_session=True,
        )
    try:
        yield clone, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{dashboard_port}", log_path
    finally:
        _stop_group(process)
        # Trainers run in their own session by design: end any the backend left behind.
        for proc in psutil.process_iter(["cmdline"]):
            if any(str(clone) in part for part in proc.info.get("cmdline") or []):
                proc.kill()


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_make_run_from_a_fresh_clone_trains_a_uci_run(
    make_run: tuple[Path, str, str, Path],
) -> None:
    clone, api, dashboard, log_path = make_run
    imported = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-c",
         "import backend, dashboard, trainer; "
         "print(backend.__file__, dashboard.__file__, trainer.__file__)"],
        cwd="/", capture_output=True, text=True, check=True, env=_env(),
    ).stdout.split()
    assert [Path(f).parent.parent for f in imported] == [clone] * 3, imported

    for url in (f"{api}/healthz", dashboard):
        wait_until_answers(url, None, log_path.read_text, what="make run")
    created = httpx.post(
        f"{api}/api/runs", json={"preset": "uci", "overrides": {"epochs": 2}}, timeout=30
    )
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    deadline = time.monotonic() + 90
    run = created.json()
    while time.monotonic() < deadline and run["status"] in ("queued", "running"):
        time.sleep(0.3)
        run = httpx.get(f"{api}/api/runs/{run_id}", timeout=30).json()
    assert run["status"] == "completed", run.get("status_reason")
    assert run["last_epoch"] == 2
    metrics = httpx.get(f"{api}/api/runs/{run_id}/metrics", timeout=30).json()
    assert [m["epoch"] for m in metrics] == [1, 2]

    # Everything lives in the clone: its runs folder, and its code compiled by the processes
    # that imported it (a fresh clone has no __pycache__; git ignores them).
    assert (clone / "runs" / "causalwatch.db").is_file()
    assert (clone / "runs" / run_id / "metrics.jsonl").is_file()
    for package, module in (("backend", "supervisor"), ("dashboard", "app"), ("trainer", "loop")):
        compiled = list((clone / package / "__pycache__").glob(f"{module}.*.pyc"))
        assert compiled, f"the clone's {package}/{module}.py was never imported"
    assert "--dashboard-port" in log_path.read_text()  # make echoed the command it ran
