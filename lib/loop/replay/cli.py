"""``python -m lib.loop.replay``: the command line."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from lib.core import startup
from lib.core.errors import DataValidationError, ParamsError, ServerUnavailableError
from lib.loop.replay.config import DEFAULT_URL, MAX_ROWS, ReplayConfig, default_url
from lib.loop.replay.run import replay, write_ids
from lib.loop.replay.sender import client_for, server_model
from lib.loop.replay.source import load_source

# Exit 2: called wrongly, or nothing to replay to (no server, a table without the model's columns).
_USAGE_ERRORS = (ParamsError, DataValidationError, ServerUnavailableError)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``python -m lib.loop.replay``."""
    parser = argparse.ArgumentParser(
        prog="python -m lib.loop.replay",
        description="Send a table's rows through the model server's REST API as a bounded "
        "stream, filling its prediction log for the monitor stage. Only the model's input "
        "columns are sent.",
        epilog="Exit codes: 0 every row predicted, 1 some rows failed or were not sent, "
        "2 usage error or no server, 130 interrupted. The API key, when the server needs "
        "one, is read from QUIRE_SERVER_API_KEY.",
    )
    parser.add_argument(
        "source",
        nargs="?",
        help="CSV/Parquet file or glob (default: the generator's production batch for the "
        "parameters)",
    )
    parser.add_argument(
        "--url", help=f"server base URL (default: QUIRE_SERVER_HOST/PORT, else {DEFAULT_URL})"
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a host that is not loopback"
    )
    parser.add_argument("--rows", type=int, help="send the first N rows (default: all)")
    parser.add_argument(
        "--max-rows", type=int, default=MAX_ROWS, help="hard cap on rows (default: %(default)s)"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=300.0, help="time limit (default: %(default)s)"
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="rows per second at most (default 0: no limit)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="rows per request; 1 posts to /predict, more to /predict/batch (default: 1)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="requests in flight (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per request (default: %(default)s)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries of a 503 or refused connection, with backoff (default: %(default)s)",
    )
    parser.add_argument(
        "--ids-out",
        type=Path,
        metavar="FILE",
        help="write request_id, row, the id column and the target of each predicted row (CSV)",
    )
    startup.add_arguments(parser, "generator.production.rows=2000")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--log-level", default="WARNING", help="log level (default: WARNING)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    return startup.guarded(lambda: _replay(args), usage=_USAGE_ERRORS)


def _replay(args: argparse.Namespace) -> int:
    params = startup.start(startup.Layers.from_args(args), log_level=args.log_level)
    env = os.environ  # with .env's variables now (lib.core.env.environment)
    config = ReplayConfig(
        url=args.url or default_url(env),
        rows=args.rows,
        max_rows=args.max_rows,
        max_seconds=args.max_seconds,
        rate=args.rate,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        timeout=args.timeout,
        retries=args.retries,
        allow_remote=args.allow_remote,
        api_key=env.get("QUIRE_SERVER_API_KEY") or None,
        progress=not args.no_progress,
    )
    with client_for(config) as client:  # before any data is read or generated
        server_model(client, config)
    frame, source = load_source(params, args.source)
    summary = replay(frame, config, source=source)
    if args.ids_out is not None:
        write_ids(summary, frame, args.ids_out, id_column=params.data.id_column)
    print(summary.format())
    if summary.stopped == "interrupted":
        return startup.EXIT_INTERRUPTED
    return startup.EXIT_OK if summary.ok else startup.EXIT_FAILED
