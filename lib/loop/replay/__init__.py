"""Replay a table's rows through the model server's REST API as a bounded, paced stream.

This fills the server's prediction log, which the monitor stage reads with
``monitor.current: log``. Only the served model's input columns are sent (read from
``GET /model``), so the target, the id column and anything else the request schema would reject
never leave. Every run is bounded: a row cap, a time limit, a rate, a concurrency limit, a
per-request timeout and a bounded number of retries. Only loopback servers are targeted unless
remote targets are allowed explicitly.

``python -m lib.loop.replay --help`` lists the options. Modules: ``config`` (target, bounds and the
summary), ``source`` (the rows to send), ``sender`` (paced, bounded, retried requests), ``run``
(one replay) and ``cli`` (the command line).
"""

from lib.loop.replay.cli import build_parser, main
from lib.loop.replay.config import (
    DEFAULT_URL,
    MAX_BATCH_ROWS,
    MAX_CONCURRENCY,
    MAX_RETRIES,
    MAX_ROWS,
    ReplayConfig,
    ReplaySummary,
    check_url,
    default_url,
)
from lib.loop.replay.run import replay, write_ids
from lib.loop.replay.sender import client_for, server_model
from lib.loop.replay.source import load_source, request_rows

__all__ = [
    "DEFAULT_URL",
    "MAX_BATCH_ROWS",
    "MAX_CONCURRENCY",
    "MAX_RETRIES",
    "MAX_ROWS",
    "ReplayConfig",
    "ReplaySummary",
    "build_parser",
    "check_url",
    "client_for",
    "default_url",
    "load_source",
    "main",
    "replay",
    "request_rows",
    "server_model",
    "write_ids",
]
