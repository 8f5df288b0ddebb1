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
    own_only: bool = False,
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
        Show on the console only Quire's own warnings and errors (those a stage's notebook
        printed included) and third parties' errors; everything else still goes to
        ``log_file``. run_all without ``-v``.
    own_only
        Show on the console Quire's own events at ``level`` and third parties' errors only
        (a stage's kernel: its console is the cell's output, and the HTML report).
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
    out = stream or sys.stderr
    if console:
        shown = _Shown(logging.NOTSET) if own_only else _Shown(logging.WARNING) if quiet else None
        root.addHandler(_console_handler(out, shown))
    if log_file is not None:
        root.addHandler(_file_handler(log_file))
        logging.captureWarnings(True)  # run_all: warnings are events of its log like any other
    root.setLevel(level.upper())
    relay = logging.getLogger("papermill")
    _drop_handlers(relay)
    if console and quiet:
        relay.addHandler(_mark(_Relay(out)))
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


class _Shown(logging.Filter):
    """Pass Quire's own events from ``own`` up and anyone's errors; drop third-party chatter."""

    def __init__(self, own: int) -> None:
        super().__init__()
        self.own = own

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        if record.name.split(".")[0] in OWN_LOGGERS:
            return record.levelno >= self.own
        return False


class _Relay(logging.Handler):
    """Print the Quire warning and error events a stage's notebook printed, as it printed them.

    Attached to papermill's logger, which echoes each cell's output.
    """

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        for line in record.getMessage().splitlines():
            if _own_warning(line):
                self.out.write(line.strip() + "\n")
        self.out.flush()


def _own_warning(text: str) -> bool:
    """Whether a cell's output holds a Quire warning or error event (as the console shows it)."""
    return any(
        ("[warning  ]" in line or "[error    ]" in line)
        and any(f"[{name}." in line for name in OWN_LOGGERS)
        for line in text.splitlines()
    )


def _mark(handler: logging.Handler) -> logging.Handler:
    handler._quire = True  # type: ignore[attr-defined]
    return handler


def _drop_handlers(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        if getattr(handler, "_quire", False):
            logger.removeHandler(handler)
            handler.close()


def _console_handler(out: TextIO, shown: logging.Filter | None) -> logging.Handler:
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
    if shown is not None:
        con.addFilter(shown)
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
