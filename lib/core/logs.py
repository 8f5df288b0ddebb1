"""Structured logging: one structlog configuration for run_all, notebooks and the server.

Nothing is configured at import time; entry points call :func:`configure_logging`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

import structlog

_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(
    level: str = "INFO",
    log_file: Path | None = None,
    *,
    console: bool = True,
    stream: TextIO | None = None,
) -> None:
    """Send structlog and stdlib logging to the console (readable) and a JSON-lines file.

    Parameters
    ----------
    level
        Minimum level name, e.g. ``"INFO"``.
    log_file
        JSON-lines file to append to; its folder is created. ``None`` logs to the console only.
    console
        Whether to log to the console.
    stream
        The console stream (default stderr); notebooks pass stdout.
    """
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_quire", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    if console:
        out = stream or sys.stderr
        con = logging.StreamHandler(out)
        con.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=_SHARED,
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.dev.ConsoleRenderer(colors=out.isatty()),
                ],
            )
        )
        handlers.append(con)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=_SHARED,
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.dict_tracebacks,
                    structlog.processors.JSONRenderer(),
                ],
            )
        )
        handlers.append(fh)
    for handler in handlers:
        handler._quire = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party chatter that drowns the pipeline's own events.
    for noisy in ("traitlets", "asyncio", "urllib3", "alembic", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return the module's structlog logger (configuration is applied lazily)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
