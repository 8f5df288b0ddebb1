"""Server settings, read from environment variables (``QUIRE_SERVER_*``) and ``.env``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the model server; see ``.env.example`` for the variables."""

    model_config = SettingsConfigDict(env_prefix="QUIRE_SERVER_", env_file=".env", extra="ignore")

    model_uri: str | None = None
    params_file: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # server processes sharing the port (server/workers.py); each loads the model
    workers: int = Field(1, ge=1, le=64)
    max_batch_rows: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # seconds a client has to send its whole body (408 after); it also bounds how long a
    # stalled upload can hold a connection, and so delay a graceful shutdown
    request_timeout_seconds: float = Field(30.0, gt=0)
    extra_fields: Literal["reject", "ignore"] = "reject"
    api_key: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
    prediction_log: bool = True
    log_flush_rows: int = Field(5000, ge=1)
    log_flush_seconds: float = Field(5.0, gt=0)
    # what a crash may lose of the answered rows (server/predlog.py): "memory" up to
    # log_flush_seconds, "interval" (default) the last log_sync_seconds, "fsync" none
    log_durability: Literal["memory", "interval", "fsync"] = "interval"
    log_sync_seconds: float = Field(0.5, gt=0)
    batch_wait_ms: float = Field(0.0, ge=0)
    batch_max_rows: int = Field(256, ge=1)
    inline_rows: int = Field(2000, ge=0)
    poll_seconds: float = Field(0.0, ge=0)
    fast_path: bool = True
