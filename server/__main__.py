"""`python -m server [--workers N]`: serve the champion with uvicorn (settings from the env).

Every setting is a ``QUIRE_SERVER_*`` variable (server/config.py); ``--host``, ``--port`` and
``--workers`` override theirs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import uvicorn

from lib.core import startup
from server.config import Settings
from server.protocol import GRACEFUL_SECONDS, DrainingProtocol


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM, which finish accepted requests, then stop.

    Starts as every Quire command does (:mod:`lib.core.startup`): invalid parameters in the
    environment are one ``error:`` line and exit code 2, not a traceback.
    """
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    parser.add_argument("--host", help="address to bind [QUIRE_SERVER_HOST, else 127.0.0.1]")
    parser.add_argument("--port", type=int, help="port [QUIRE_SERVER_PORT, else 8000]")
    parser.add_argument(
        "--workers", type=int, help="server processes on the port [QUIRE_SERVER_WORKERS, else 1]"
    )
    args = parser.parse_args(argv)
    for name in ("host", "port", "workers"):
        if getattr(args, name) is not None:
            os.environ[f"QUIRE_SERVER_{name.upper()}"] = str(getattr(args, name))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    startup.start_logging("INFO")
    return startup.guarded(_serve)


def _serve() -> int:
    settings = Settings()
    _check_model(settings)
    if settings.workers > 1:
        from server.workers import serve

        return serve(settings)
    from server.main import create_app

    DrainingProtocol.headers_timeout = settings.request_timeout_seconds
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        http=DrainingProtocol,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
    return 0


def _check_model(settings: Settings) -> None:
    """Fail in one ``error:`` line when there is no model to serve (no champion yet).

    Without this, each worker would fail in its start-up with a traceback.
    """
    from lib.core.params import load_params
    from lib.serving.loading import registered_version

    presets = [settings.params_file] if settings.params_file else []
    registered_version(load_params(presets, env=os.environ), settings.model_uri)


if __name__ == "__main__":
    raise SystemExit(main())
