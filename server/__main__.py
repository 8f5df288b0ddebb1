"""`python -m server`: serve the champion with uvicorn on 127.0.0.1 (settings from the env)."""

from __future__ import annotations

import os

import uvicorn

from lib.core import startup
from server.config import Settings
from server.main import create_app


def main() -> int:
    """Start one uvicorn worker; SIGINT/SIGTERM finish accepted requests, then stop.

    Starts as every Quire command does (:mod:`lib.core.startup`): invalid parameters in the
    environment are one ``error:`` line and exit code 2, not a traceback.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    startup.start_logging("INFO")
    return startup.guarded(_serve)


def _serve() -> int:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=20,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
