"""The container image, checked without a Docker engine (none runs here).

Static tests read the Dockerfile: non-root USER, the /data VOLUME, the exposed ports, the
HEALTHCHECK, and torch from the CPU index at pyproject.toml's pin.

The live tests redo the Dockerfile's build in a fresh venv (no system site packages): the
CPU torch wheel, then the project with the Dockerfile's extras, built from exactly the files
its COPY instructions take. Then they run its ENTRYPOINT + CMD and HEALTHCHECK, parsed from
the Dockerfile rather than copied here, with the container's environment, and probe what a
user and Docker would: the health check, the API and dashboard with and without the token,
a run writing into the volume, and `docker stop`'s SIGTERM.

Where this differs from a real container, on purpose:
- Paths: a temporary folder stands in for the container's filesystem root, so /data (the
  volume) and /app (the build's WORKDIR) are folders under it; arguments under a VOLUME
  are rewritten to match.
- Python: this interpreter rather than the image's; `test_base_image_python_matches` checks
  both are the same minor version.
- pip: the venv has none of its own; this interpreter's pip installs into it, without
  byte-compiling (the image's build compiles; here only what runs is compiled, when it runs).
- torch: the Dockerfile's CPU index is out of reach here, so `torch==<pin>+cpu` comes from
  the machine's wheels (pip's find-links); the `+cpu` local version only a CPU build has.
- Ports: the CMD leaves them to the settings, so CAUSALWATCH_PORT and
  CAUSALWATCH_DASHBOARD_PORT (what `docker run -e` would set) pick free ones: a developer's
  own `causalwatch up` on 8000/8050, or a parallel CI job, cannot collide with the test.
  The HEALTHCHECK reads CAUSALWATCH_PORT too, so it is run unchanged.
- PID 1: in a container `causalwatch` is PID 1; here it is not (see the SIGTERM test).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

import httpx
import psutil
import pytest
from utils.backend_server import free_ports
from utils.processes import end_processes

from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Generous: installing torch and ~60 packages into the fresh venv takes one to two minutes
# on this 2-core machine (warm or empty pip cache alike), more on a slow registry mirror.
INSTALL_TIMEOUT = 900
START_TIMEOUT = 120
# pytest-timeout counts fixture setup against the first test that needs it: the image's
# install must fit, beyond the project's 300 s default.
pytestmark = [pytest.mark.timeout(2 * INSTALL_TIMEOUT + START_TIMEOUT + 60), pytest.mark.long]


# --- the Dockerfile, parsed ------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, COPY, ...
    args: str  # the rest, continuation lines joined
    line: int  # where it starts, for messages


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of the final stage, comments dropped and `\\` continuations joined.

    Only the final stage is the image; a later ENTRYPOINT/CMD/USER/HEALTHCHECK overrides an
    earlier one, so callers take the last of each.
    """
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        # Docker skips comment and empty lines, also in the middle of a continuation.
        if not line or line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        keyword, _, args = " ".join(pending).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


def command_form(args: str) -> tuple[list[str], bool]:
    """(argv, is exec form): a JSON array of strings is exec form, anything else shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value, True
    return ["/bin/sh", "-c", args], False


def last(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [ins for ins in instructions if ins.keyword == keyword]
    assert found, f"the Dockerfile has no {keyword}"
    return found[-1]


def entry_argv(instructions: list[Instruction]) -> list[str]:
    """What Docker runs: ENTRYPOINT + CMD in exec form (a shell-form ENTRYPOINT drops CMD)."""
    entrypoint, exec_form = command_form(last(instructions, "ENTRYPOINT").args)
    if not exec_form:
        return entrypoint
    cmd = [ins for ins in instructions if ins.keyword == "CMD"]
    return entrypoint + (command_form(cmd[-1].args)[0] if cmd else [])


@dataclass(frozen=True)
class Healthcheck:
    options: dict[str, str]  # --interval=30s → {"interval": "30s"}
    argv: list[str]

    @property
    def timeout(self) -> float:
        """Docker's --timeout (default 30s), in seconds."""
        value = self.options.get("timeout", "30s")
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value)
        assert match, f"HEALTHCHECK --timeout={value} is no duration this test knows"
        return float(match[1]) * units[match[2]]


def healthcheck(instructions: list[Instruction]) -> Healthcheck:
    args = last(instructions, "HEALTHCHECK").args
    assert args.upper() != "NONE", "HEALTHCHECK NONE switches the health check off"
    match = re.fullmatch(r"((?:--[\w-]+=\S+\s+)*)CMD\s+(.+)", args, flags=re.DOTALL)
    assert match, f"HEALTHCHECK not understood: {args}"
    options = dict(opt[2:].split("=", 1) for opt in match[1].split())
    return Healthcheck(options, command_form(match[2])[0])


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    """ENV key=value pairs (the modern form; the legacy `ENV key value` is not used here)."""
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                key, sep, value = pair.partition("=")
                assert sep, f"line {ins.line}: write ENV as key=value"
                env[key] = value
    return env


def volumes(instructions: list[Instruction]) -> list[str]:
    found: list[str] = []
    for ins in instructions:
        if ins.keyword == "VOLUME":
            argv, exec_form = command_form(ins.args)
            found += argv if exec_form else ins.args.split()
    return found


def exposed_ports(instructions: list[Instruction]) -> set[int]:
    return {
        int(port.split("/")[0])
        for ins in instructions if ins.keyword == "EXPOSE" for port in ins.args.split()
    }


def flag(argv: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in argv."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def torch_pin_in_pyproject() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [m[1] for d in deps if (m := re.fullmatch(r"torch\s*==\s*(\S+)", d))]
    assert len(pins) == 1, f"pyproject.toml should pin torch with == exactly once: {deps}"
    return pins[0]


@dataclass(frozen=True)
class PipSteps:
    """The Dockerfile's two installs: torch from the CPU index, then the project."""

    torch_version: str
    torch_line: int
    project_dir: str  # the WORKDIR of `pip install ".[extras]"`, a container path
    extras: str  # "[postgres]", or "" without extras
    project_line: int


def pip_steps(instructions: list[Instruction]) -> PipSteps:
    torch: tuple[str, int] | None = None
    project: tuple[str, str, int] | None = None
    workdir = "/"
    for ins in instructions:
        if ins.keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / ins.args)
        if ins.keyword != "RUN" or "pip install" not in ins.args:
            continue
        words = shlex.split(ins.args)
        if pin := next((w for w in words if w.startswith("torch==")), None):
            assert flag(words, "--index-url") == CPU_INDEX, (
                f"line {ins.line}: torch must come from the CPU index {CPU_INDEX} alone "
                "(--index-url): PyPI's wheel is the multi-GB CUDA build"
            )
            torch = (pin.removeprefix("torch=="), ins.line)
        if local := next((w for w in words if re.fullmatch(r"\.(\[[\w,-]+\])?", w)), None):
            project = (workdir, local[1:], ins.line)
    assert torch, "no `RUN pip install ... torch==<version>` in the Dockerfile"
    assert project, 'no `RUN pip install ".[extras]"` of the project in the Dockerfile'
    return PipSteps(torch[0], torch[1], project[0], project[1], project[2])


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text())


# --- static facts ----------------------------------------------------------------------------


def test_runs_as_a_non_root_user() -> None:
    user = last(INSTRUCTIONS, "USER").args.split(":")[0]
    assert user not in ("root", "0"), f"USER {user} is root"
    if user.isdigit():  # a numeric uid must be the one the image creates, not a stranger
        created = " ".join(ins.args for ins in INSTRUCTIONS if ins.keyword == "RUN")
        assert f"--uid {user}" in created, f"USER {user}: no RUN creates that uid"


def test_runs_and_database_live_in_the_volume() -> None:
    argv = entry_argv(INSTRUCTIONS)
    assert "/data" in volumes(INSTRUCTIONS)
    runs_dir = flag(argv, "--runs-dir")
    assert runs_dir and PurePosixPath(runs_dir).is_relative_to("/data"), (
        f"--runs-dir {runs_dir}: runs and the SQLite file next to them must be in /data"
    )
    # The SQLite file follows --runs-dir unless a database URL sends it elsewhere.
    env = env_of(INSTRUCTIONS)
    assert not {"DATABASE_URL", "CAUSALWATCH_DB"} & env.keys() and not flag(argv, "--db")
    # The volume starts owned by the image's user, or it could not write there.
    user = last(INSTRUCTIONS, "USER").args.split(":")[0]
    runs = [ins.args for ins in INSTRUCTIONS if ins.keyword == "RUN"]
    assert any(re.search(rf"chown -R {user}\S* /data\b", run) for run in runs)


def test_exposes_the_api_and_dashboard_ports() -> None:
    argv = entry_argv(INSTRUCTIONS)
    fields = Settings.model_fields
    api = int(flag(argv, "--port") or fields["port"].default)
    dashboard = int(flag(argv, "--dashboard-port") or fields["dashboard_port"].default)
    assert {api, dashboard} <= exposed_ports(INSTRUCTIONS)
    # Reachable from outside the container: a loopback bind would expose nothing.
    assert flag(argv, "--host") == "0.0.0.0"


def test_has_a_healthcheck_on_the_api() -> None:
    check = healthcheck(INSTRUCTIONS)
    assert any("/healthz" in arg for arg in check.argv), check.argv
    assert check.timeout <= 30


def test_torch_is_the_cpu_build_at_the_pinned_version() -> None:
    steps = pip_steps(INSTRUCTIONS)
    assert steps.torch_version == torch_pin_in_pyproject()
    # Before the project: its `torch==` requirement is then met by the CPU build already in
    # place, instead of pip resolving torch from PyPI (CUDA) for it.
    assert steps.torch_line < steps.project_line


def test_base_image_python_matches() -> None:
    base = last(INSTRUCTIONS, "FROM").args.split()[0]
    match = re.fullmatch(r"python:(\d+)\.(\d+)\S*", base)
    assert match, f"FROM {base}: expected an official python:X.Y image"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = re.fullmatch(r">=\s*(\d+)\.(\d+)", requires)
    assert floor and (int(match[1]), int(match[2])) >= (int(floor[1]), int(floor[2]))
    # The live tests below use this interpreter in the image's place.
    assert sys.version_info[:2] == (int(match[1]), int(match[2])), (
        f"the image runs Python {match[1]}.{match[2]}, these tests run {sys.version}"
    )


# --- the image, rebuilt in a venv ------------------------------------------------------------


def dockerignore() -> list[str]:
    path = ROOT / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """A subset of .dockerignore matching: enough for the patterns this project uses."""
    name = relative.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern.startswith("!"):
            raise AssertionError(".dockerignore exceptions (!) are not emulated here")
        if fnmatch(relative, pattern) or (
            pattern.startswith("**/") and fnmatch(name, pattern[3:])
        ):
            return True
    return False


class ContainerFs:
    """A temporary folder standing for the container's `/`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, container_path: str) -> Path:
        return self.root / PurePosixPath(container_path).relative_to("/")

    def copy(self, workdir: str, args: str) -> None:
        """`COPY src... dest` from the build context (this checkout), .dockerignore applied."""
        *sources, dest = shlex.split(args)
        assert not any(s.startswith("--") for s in sources), f"COPY flags not emulated: {args}"
        patterns = dockerignore()
        target = self.path(str(PurePosixPath(workdir) / dest))
        for source in sources:
            src = ROOT / source
            assert src.exists(), f"COPY {source}: not in the build context"
            if src.is_dir():
                def skip(folder: str, names: list[str]) -> list[str]:
                    rel = Path(folder).relative_to(ROOT).as_posix()
                    return [n for n in names if ignored(f"{rel}/{n}", patterns)]

                shutil.copytree(src, target, ignore=skip, dirs_exist_ok=True)
            else:
                into = target / src.name if dest.endswith("/") or len(sources) > 1 else target
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, into)


def clean_env() -> dict[str, str]:
    """This machine's environment for pip (its mirrors and wheels), minus what leaks a venv."""
    leaks = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_NO_CACHE_DIR", "PIP_TARGET",
             "PIP_PREFIX", "PIP_USER", "PIP_REQUIRE_VIRTUALENV")
    # PIP_NO_CACHE_DIR is the Dockerfile's to keep layers small; the cache only saves time.
    return {k: v for k, v in os.environ.items() if k not in leaks}


def run_checked(argv: list[str], what: str, timeout: float) -> None:
    proc = subprocess.run(
        argv, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"


@dataclass(frozen=True)
class Image:
    fs: ContainerFs
    venv: Path


def image_pip(venv: Path) -> list[str]:
    """pip acting on the venv that stands for the image."""
    return [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The Dockerfile's build, step by step, into a fresh venv standing for the image."""
    fs = ContainerFs(tmp_path_factory.mktemp("container"))
    venv = tmp_path_factory.mktemp("image") / "venv"
    # A plain venv: no system site packages, nothing from the dev venv. Not even pip: this
    # interpreter's pip installs into it (`--python`), sparing a pip bootstrap per session.
    run_checked([sys.executable, "-m", "venv", "--without-pip", str(venv)], "python -m venv",
                120)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    pip = [*image_pip(venv), "install", "--quiet", "--disable-pip-version-check",
           # Byte-compiling all of torch takes longer than the rest of the install; the
           # modules the entry command imports compile when it first imports them.
           "--no-compile"]

    steps = pip_steps(INSTRUCTIONS)
    workdir = "/"
    for ins in INSTRUCTIONS:
        if ins.keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / ins.args)
        elif ins.keyword == "COPY":
            fs.copy(workdir, ins.args)
        elif ins.line == steps.torch_line:
            # `+cpu`: only a CPU build can satisfy it, so a missing local wheel fails here
            # rather than quietly fetching PyPI's CUDA build (gigabytes).
            run_checked(
                [*pip, "--only-binary=:all:", f"torch=={steps.torch_version}+cpu"],
                f"installing the CPU torch {steps.torch_version} (is its wheel on pip's "
                "find-links? the Dockerfile's CPU index is not reachable from here)",
                INSTALL_TIMEOUT,
            )
        elif ins.line == steps.project_line:
            project = fs.path(steps.project_dir)
            run_checked([*pip, f"{project}{steps.extras}"], "installing the project",
                        INSTALL_TIMEOUT)
    for volume in volumes(INSTRUCTIONS):
        fs.path(volume).mkdir(parents=True, exist_ok=True)

    # The project's `torch==` requirement must not have swapped the CPU build for another.
    freeze = subprocess.run(
        [*image_pip(venv), "list", "--format=freeze"],
        env=clean_env(), capture_output=True, text=True, check=True,
    ).stdout.split()
    assert f"torch=={steps.torch_version}+cpu" in freeze
    assert not [p for p in freeze if p.lower().startswith("nvidia")], freeze
    return Image(fs, venv)


@dataclass
class Container:
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    workdir: Path
    log: Path
    api: str
    dashboard: str
    token: str
    runs_dir: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def container(image: Image) -> Iterator[Container]:
    """`docker run -e CAUSALWATCH_TOKEN=...`: the entry command with the image's environment."""
    fs = image.fs
    # Free on every interface: the entry command binds 0.0.0.0.
    api_port, dashboard_port = free_ports(2, host="0.0.0.0")
    token = "container-test-token-0123456789"
    home = fs.path("/home/causalwatch")
    home.mkdir(parents=True)
    env = {
        # The venv's bin stands for the image's /usr/local/bin; no host tool leaks in.
        "PATH": f"{image.venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",  # set by the python base image
        **env_of(INSTRUCTIONS),
        "CAUSALWATCH_TOKEN": token,
        "CAUSALWATCH_PORT": str(api_port),
        "CAUSALWATCH_DASHBOARD_PORT": str(dashboard_port),
    }
    mounts = volumes(INSTRUCTIONS)

    def in_fs(arg: str) -> str:  # a path inside a volume → the same path under fs.root
        inside = arg.startswith("/") and any(
            PurePosixPath(arg).is_relative_to(v) for v in mounts
        )
        return str(fs.path(arg)) if inside else arg

    argv = [in_fs(arg) for arg in entry_argv(INSTRUCTIONS)]
    # Docker resolves an exec-form program on the image's PATH: the wheel's console script.
    program = shutil.which(argv[0], path=env["PATH"])
    assert program and Path(program).parent == image.venv / "bin", (argv[0], program)
    workdir = fs.path(last(INSTRUCTIONS, "WORKDIR").args)
    runs_dir = Path(in_fs(flag(entry_argv(INSTRUCTIONS), "--runs-dir") or "/data/runs"))
    log = fs.root / "container.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [program, *argv[1:]], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT,
        )
    box = Container(process, env, workdir, log, f"http://127.0.0.1:{api_port}",
                    f"http://127.0.0.1:{dashboard_port}", token, runs_dir)
    try:
        wait_until_serving(box)
        yield box
    finally:
        stop_everything(process)


def wait_until_serving(box: Container) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if box.process.poll() is not None:
            pytest.fail(f"the entry command exited ({box.process.returncode}):\n"
                        f"{box.log_text()[-4000:]}")
        try:
            api = httpx.get(f"{box.api}/healthz", timeout=5).status_code
        except httpx.TransportError:
            api = None
        if api == 200:
            # `up` starts the dashboard before the API; with the API serving and no child
            # left, the dashboard died (and `up` keeps serving the API without it).
            if not psutil.Process(box.process.pid).children():
                pytest.fail(f"the dashboard process exited:\n{box.log_text()[-4000:]}")
            try:
                if httpx.get(box.dashboard, timeout=5).status_code in (200, 401):
                    return  # 401: up, and asking for the token
            except httpx.TransportError:
                pass
        time.sleep(0.25)
    pytest.fail(f"not serving after {START_TIMEOUT}s:\n{box.log_text()[-4000:]}")


def stop_everything(process: subprocess.Popen[bytes]) -> None:
    """Teardown after a failure: the entry command and whatever it started (dashboard,
    trainers) must not outlive the test."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if process.poll() is None:
        process.kill()
        process.wait(10)
    end_processes(children, grace=0)


def run_healthcheck(box: Container) -> subprocess.CompletedProcess[str]:
    check = healthcheck(INSTRUCTIONS)
    return subprocess.run(
        check.argv, cwd=box.workdir, env=box.env, capture_output=True, text=True,
        timeout=check.timeout, check=False,
    )


# The live tests share one running container and run in file order: SIGTERM comes last.


def test_healthcheck_passes(container: Container) -> None:
    proc = run_healthcheck(container)
    assert proc.returncode == 0, proc.stderr


def test_api_needs_the_token(container: Container) -> None:
    assert httpx.get(f"{container.api}/healthz", timeout=10).status_code == 200  # stays open
    refused = httpx.get(f"{container.api}/api/runs", timeout=10)
    assert refused.status_code == 401, refused.text
    assert refused.headers.get("www-authenticate") == "Bearer"
    wrong = httpx.get(f"{container.api}/api/runs", timeout=10,
                      headers={"Authorization": "Bearer not-the-container-token"})
    assert wrong.status_code == 401
    accepted = httpx.get(f"{container.api}/api/runs", timeout=10,
                         headers={"Authorization": f"Bearer {container.token}"})
    assert accepted.status_code == 200, accepted.text


def test_dashboard_needs_the_token(container: Container) -> None:
    assert httpx.get(container.dashboard, timeout=10).status_code == 401
    with httpx.Client(base_url=container.dashboard, timeout=30) as browser:
        opened = browser.get("/", params={"token": container.token})
        # The token leaves the URL at once; a session cookie (not the token) opens it then.
        assert opened.status_code == 303 and "token" not in opened.headers["location"]
        assert container.token not in str(dict(browser.cookies))
        page = browser.get("/")
        assert page.status_code == 200 and "causalwatch" in page.text
        layout = browser.get("/_dash-layout")
        assert layout.status_code == 200, layout.text[:500]
        # Package data made it into the wheel (the live view's script).
        assert browser.get("/assets/live.js").status_code == 200


def test_a_run_trains_and_lands_in_the_volume(container: Container) -> None:
    headers = {"Authorization": f"Bearer {container.token}"}
    with httpx.Client(base_url=container.api, headers=headers, timeout=30) as api:
        created = api.post("/api/runs", json={
            "preset": "synthetic", "overrides": {"epochs": 2, "synthetic_samples": 300},
        })
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        deadline = time.monotonic() + 180
        run = created.json()
        while run["status"] not in ("completed", "stopped", "failed"):
            assert time.monotonic() < deadline, f"run still {run['status']}"
            time.sleep(0.5)
            run = api.get(f"/api/runs/{run_id}").json()
        assert run["status"] == "completed", run.get("status_reason")
    # Everything a restart needs is in the volume: the database and the run's folder.
    assert (container.runs_dir / "causalwatch.db").is_file()
    assert any((container.runs_dir / run_id).iterdir())


def test_sigterm_stops_it_cleanly(container: Container) -> None:
    """`docker stop`: SIGTERM, then SIGKILL after 10 s. It must be done well within that.

    Here `causalwatch` is not PID 1, and uvicorn re-raises SIGTERM after its graceful
    shutdown, so the process ends by that signal (-SIGTERM) unless it handles it itself; as
    PID 1 the kernel would ignore that re-raised signal and it would return 0. Either is a
    clean stop once the shutdown completed and nothing was left running.
    """
    process = container.process
    children = psutil.Process(process.pid).children(recursive=True)
    assert children, "no dashboard process was started"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(30)
    took = time.monotonic() - started
    log = container.log_text()
    assert code in (0, -signal.SIGTERM), f"exit {code}:\n{log[-4000:]}"
    assert took < 10, f"took {took:.1f}s: docker stop would have SIGKILLed it"
    assert "Application shutdown complete" in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left running after the stop: {[p.pid for p in alive]}"
    # The health check notices a server that is down.
    assert run_healthcheck(container).returncode != 0
