"""`python -m server`: serve the champion with uvicorn on 127.0.0.1 (settings from the env)."""

from __future__ import annotations

import os

import uvicorn

from lib.core.logs import configure_logging
from server.config import Settings
from server.main import create_app


def main() -> None:
    """Start one uvicorn worker; SIGINT/SIGTERM finish accepted requests, then stop."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    settings = Settings()
    configure_logging("INFO")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
