"""The backend's one settings object, from the environment and `causalwatch up` flags."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Env vars are `CAUSALWATCH_<FIELD>`; the database URL also reads `DATABASE_URL`."""

    model_config = SettingsConfigDict(env_prefix="CAUSALWATCH_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    dashboard_port: int = Field(8050, ge=0, le=65535)
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("CAUSALWATCH_DB", "DATABASE_URL")
    )
    runs_dir: Path = Path("runs")
    max_runs: int = Field(2, ge=1, le=256, description="trainer processes at once")
    max_queued: int = Field(1000, ge=0, le=100_000, description="runs waiting for a slot")
    stop_timeout: float = Field(10.0, gt=0, le=3600, description="SIGTERM → SIGKILL after")
    data: str | None = Field(None, description="UCI CSV handed to trainers (CAUSALWATCH_DATA)")
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

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.runs_dir / 'causalwatch.db').resolve()}"

    @property
    def ingest_base_url(self) -> str:
        """How a trainer on this machine reaches us: a wildcard bind is reached on loopback."""
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"
