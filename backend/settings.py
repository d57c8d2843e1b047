"""The backend's one settings object, from the environment and `causalwatch up` flags."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def resolve_path(value: str | os.PathLike[str]) -> Path:
    """An absolute path, relative ones taken against the directory `up` was started in.

    Trainers run with their run folder as working directory: a relative path handed on
    unchanged would point somewhere else there.
    """
    return Path(value).expanduser().resolve()


def _described(given: str | os.PathLike[str], resolved: Path) -> str:
    return str(resolved) if str(given) == str(resolved) else f"{resolved} (given as {given})"


_HOST_NAME = re.compile(r"[A-Za-z0-9.-]{1,253}|\[?[0-9A-Fa-f:.]{2,45}\]?")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]{1,260}/?")
_RAY_ADDRESS = re.compile(r"auto|[A-Za-z0-9.\-\[\]:]{1,260}:[0-9]{1,5}")


class Settings(BaseSettings):
    """Env vars are `CAUSALWATCH_<FIELD>`; the database URL also reads `DATABASE_URL`."""

    model_config = SettingsConfigDict(env_prefix="CAUSALWATCH_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    dashboard_port: int = Field(8050, ge=0, le=65535)
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("CAUSALWATCH_DB", "DATABASE_URL")
    )
    runs_dir: Path = Field(
        Path("runs"),
        validate_default=True,  # the default is relative too: pin it to the start directory
        description="run folders and the default SQLite file; created if missing",
    )
    max_runs: int = Field(2, ge=1, le=256, description="trainer processes at once")
    max_queued: int = Field(1000, ge=0, le=100_000, description="runs waiting for a slot")
    probes: bool = Field(
        True, description="try each warning/critical alert's fixes in short probe runs"
    )
    max_probes: int = Field(
        1, ge=0, le=64,
        description="probe trainers at once, in slots of their own beside max_runs",
    )
    probe_nice: int = Field(
        19, ge=0, le=19, description="CPU niceness of probe trainers: they take idle CPU only"
    )
    stop_timeout: float = Field(10.0, gt=0, le=3600, description="SIGTERM → SIGKILL after")
    data: str | None = Field(None, description="UCI CSV handed to trainers (CAUSALWATCH_DATA)")
    data_dir: Path | None = Field(
        None, description="folder whose CSV/JSON files runs may name (CAUSALWATCH_DATA_DIR)"
    )
    max_upload_mb: float = Field(
        50.0, gt=0, le=4096, description="largest data file POST /api/datasets accepts"
    )
    python: str = Field(sys.executable, description="interpreter that runs `-m trainer`")
    log_tail_lines: int = Field(20, ge=1, le=1000)
    poll_interval: float = Field(0.2, gt=0, le=10)
    min_free_mb: float = Field(
        50.0, ge=0, le=1e7, description="refuse new runs below this free space in runs_dir"
    )
    token: str | None = Field(
        None, min_length=16, max_length=256,
        description="required on every API call and websocket when set (CAUSALWATCH_TOKEN)",
    )
    # NoDecode: the environment gives these comma-separated, not as JSON lists.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="host names the API and dashboard answer to besides loopback and --host "
        "(CAUSALWATCH_ALLOWED_HOSTS, comma-separated); others get 400 (DNS rebinding)",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="browser origins allowed besides the dashboard's and the API's own, "
        "e.g. http://127.0.0.1:9050 for a dashboard started separately",
    )
    max_websockets: int = Field(
        256, ge=1, le=100_000, description="open websockets at once; beyond it closed with 1013"
    )
    max_run_seconds: float | None = Field(
        86_400.0, gt=0, le=365 * 86_400,
        description="wall-clock limit of one run; a trainer past it is stopped with the reason",
    )
    ticket_ttl_seconds: int = Field(
        600, ge=10, le=86_400,
        description="life of the read-only tickets the dashboard hands its page (token mode)",
    )
    # Where trainers run (backend/executors/, docs/scaling.md).
    executor: Literal["local", "ray"] = Field(
        "local", description="local: trainer subprocesses here; ray: Ray actors on a cluster"
    )
    ray_address: str | None = Field(
        None, validate_default=True,
        description="executor ray: the cluster's address, host:port of its head (or auto)",
    )
    ray_namespace: str = Field(
        "causalwatch", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Ray namespace of the trainers' named actors (one per backend)",
    )
    ray_num_cpus: float = Field(1.0, gt=0, le=256, description="CPUs one Ray trainer reserves")
    ray_start_timeout: float = Field(
        300.0, gt=0, le=86_400,
        description="a Ray trainer no node could take within this long fails (e.g. it asks "
        "for a GPU no node has)",
    )
    ingest_url: str | None = Field(
        None,
        description="how trainers reach this backend, e.g. http://10.0.0.4:8000 for Ray "
        "workers on other machines (default: this machine's own address and port)",
    )

    @property
    def is_loopback(self) -> bool:
        return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        if value != "localhost":
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(
                    f"host must be an IP address or 'localhost', got {value!r}"
                ) from None
        return value

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(
                    f"not a host name or IP address: {name!r} (no scheme, port or path)"
                )
        return [name.lower().strip("[]") for name in value]

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"not an origin: {origin!r} (scheme://host[:port], e.g. http://127.0.0.1:9050)"
                )
        return [origin.lower().rstrip("/") for origin in value]

    @field_validator("ray_address")
    @classmethod
    def _ray_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("executor") != "ray":
            return value
        if not value:
            raise ValueError("executor ray needs the cluster's address (--ray-address "
                             "HOST:PORT of its head, or auto)")
        if not _RAY_ADDRESS.fullmatch(value):
            raise ValueError(f"not a Ray address: {value!r} (HOST:PORT of the head, or auto)")
        if importlib.util.find_spec("ray") is None:
            raise ValueError("executor ray needs the ray package: pip install 'causalwatch[ray]'")
        return value

    @field_validator("ingest_url")
    @classmethod
    def _ingest_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _ORIGIN.fullmatch(value):
            raise ValueError(f"not a URL: {value!r} (http://host:port)")
        return value.rstrip("/")

    @field_validator("runs_dir")
    @classmethod
    def _usable_runs_dir(cls, value: Path) -> Path:
        resolved = resolve_path(value)
        if resolved.exists() and not resolved.is_dir():
            raise ValueError(f"not a folder: {_described(value, resolved)}")
        existing = next(p for p in (resolved, *resolved.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(
                f"cannot create or write {_described(value, resolved)}: {existing} is not a "
                "writable folder"
            )
        return resolved

    @field_validator("data")
    @classmethod
    def _existing_data_file(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        resolved = resolve_path(value)
        if not resolved.is_file():
            problem = "not a file" if resolved.exists() else "file not found"
            raise ValueError(f"{problem}: {_described(value, resolved)}")
        return str(resolved)

    @field_validator("data_dir")
    @classmethod
    def _existing_data_dir(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        resolved = resolve_path(value)
        if not resolved.is_dir():
            problem = "not a folder" if resolved.exists() else "folder not found"
            raise ValueError(f"{problem}: {_described(value, resolved)}")
        return resolved

    @field_validator("database_url")
    @classmethod
    def _absolute_sqlite_file(cls, value: str | None) -> str | None:
        """A SQLite file named relatively is pinned to the start directory, and its folder
        must exist: SQLite would otherwise fail at the first request, far from the cause."""
        if value is None or not value.strip():
            return None
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a SQLAlchemy URL (e.g. sqlite:///runs/causalwatch.db)") from None
        database = url.database
        if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return value
        if database.startswith("file:"):  # a URI filename: SQLite parses it, leave it be
            return value
        resolved = resolve_path(database)
        if not resolved.parent.is_dir():
            raise ValueError(
                f"folder of the SQLite file not found: {_described(database, resolved)}"
            )
        if resolved.is_dir():
            raise ValueError(f"is a folder, not a SQLite file: {_described(database, resolved)}")
        return url.set(database=str(resolved)).render_as_string(hide_password=False)

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.runs_dir / 'causalwatch.db'}"

    @property
    def ingest_base_url(self) -> str:
        """How a trainer on this machine reaches us: a wildcard bind is reached on loopback."""
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def trainer_ingest_url(self) -> str:
        """The backend URL handed to trainers: `ingest_url`, else this machine's own."""
        return self.ingest_url or self.ingest_base_url
