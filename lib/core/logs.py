"""Structured logging: one structlog configuration for run_all, notebooks and the server.

Nothing is configured at import time; entry points call :func:`configure_logging`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TextIO

import structlog

LOG_FILE_ENV = "QUIRE_LOG_FILE"  # set in a stage's kernel: the run's JSON-lines log
OWN_LOGGERS = ("lib", "quire", "server")  # Quire's own events, as opposed to third parties'

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
    quiet: bool = False,
) -> None:
    """Send structlog and stdlib logging to the console (readable) and a JSON-lines file.

    With a ``log_file``, Python warnings are logged too (``py.warnings``), as every other
    third-party event.

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
    quiet
        Show on the console only Quire's own warnings and errors, and third parties' errors;
        everything else still goes to ``log_file``.
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
    _drop_handlers(root)
    handlers: list[logging.Handler] = []
    if console:
        handlers.append(_console_handler(stream or sys.stderr, quiet))
    if log_file is not None:
        handlers.append(_file_handler(log_file))
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level.upper())
    if log_file is not None:  # run_all: warnings are events of its log like any other
        logging.captureWarnings(True)
    # Third-party chatter that drowns the pipeline's own events.
    for noisy in ("traitlets", "asyncio", "urllib3", "alembic", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def warnings_to_file(log_file: Path | None) -> None:
    """Send Python warnings only to ``log_file`` (nowhere when None), never to the console.

    In a stage's kernel the console is the cell's output: third-party warnings would land in
    the HTML report.
    """
    logger = logging.getLogger("py.warnings")
    _drop_handlers(logger)
    logger.propagate = False
    logger.addHandler(_file_handler(log_file) if log_file else _mark(logging.NullHandler()))
    logging.captureWarnings(True)


def adopt_loggers(*names: str) -> None:
    """Send libraries' loggers that print on their own (MLflow's) through Quire's handlers.

    Their events then go to the log file, and to the console only as :func:`configure_logging`
    lets them. Import the library first: it sets its loggers up at import.
    """
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def kernel_log_file() -> Path | None:
    """Return the run's log file that run_all gave a stage's kernel (None outside run_all)."""
    value = os.environ.get(LOG_FILE_ENV)
    return Path(value) if value else None


class _OwnEvents(logging.Filter):
    """Pass Quire's own warnings and errors and any error; drop third parties' chatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name.split(".")[0] in OWN_LOGGERS
        return record.levelno >= (logging.WARNING if own else logging.ERROR)


def _mark(handler: logging.Handler) -> logging.Handler:
    handler._quire = True  # type: ignore[attr-defined]
    return handler


def _drop_handlers(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        if getattr(handler, "_quire", False):
            logger.removeHandler(handler)
            handler.close()


def _console_handler(out: TextIO, quiet: bool) -> logging.Handler:
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
    if quiet:
        con.addFilter(_OwnEvents())
    return _mark(con)


def _file_handler(log_file: Path) -> logging.Handler:
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
    return _mark(fh)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return the module's structlog logger (configuration is applied lazily)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
