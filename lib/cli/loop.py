"""``quire demo``, ``quire replay`` and ``quire lineage``: the closed loop around the server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lib.cli.options import Overrides, Presets, exits, flags, layer_args


@exits
def demo(
    presets: Presets = None,
    overrides: Overrides = None,
    port: Annotated[int, typer.Option("--port", help="Model server port.")] = 8000,
    dashboard_port: Annotated[int, typer.Option("--dashboard-port", help="Dashboard port.")] = 8866,
    rate: Annotated[float, typer.Option("--rate", help="Replayed rows per second.")] = 1000.0,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Stop the server and dashboard at the end.")
    ] = False,
) -> int:
    """Run the loop in minutes: pipeline, server, drifted traffic, monitor, dashboard.

    Every step it runs is printed first, so it doubles as a script to copy from. Ctrl-C stops
    the server and the dashboard it started.
    """
    from lib.loop import demo as loop_demo

    argv = layer_args(presets, overrides) + flags(
        port=port, dashboard_port=dashboard_port, rate=rate, no_wait=no_wait
    )
    return loop_demo.main(argv)


@exits
def replay(
    source: Annotated[
        str | None,
        typer.Argument(
            help="CSV/Parquet file or glob [the generator's production batch].", show_default=False
        ),
    ] = None,
    presets: Presets = None,
    overrides: Overrides = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Server base URL [QUIRE_SERVER_HOST/PORT, else http://127.0.0.1:8000].",
            show_default=False,
        ),
    ] = None,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a host that is not loopback.")
    ] = False,
    rows: Annotated[
        int | None, typer.Option("--rows", help="Send the first N rows [all].", show_default=False)
    ] = None,
    max_rows: Annotated[
        int | None,
        typer.Option("--max-rows", help="Hard cap on rows [100,000].", show_default=False),
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option("--max-seconds", help="Time limit [300].", show_default=False)
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Rows per second at most [0: no limit].", show_default=False),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            help="Rows per request; 1 posts to /predict, more to /predict/batch [1].",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", help="Requests in flight [4].", show_default=False),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Seconds per request [10].", show_default=False),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(
            "--retries",
            help="Retries of a 503 or refused connection, with backoff [3].",
            show_default=False,
        ),
    ] = None,
    ids_out: Annotated[
        Path | None,
        typer.Option(
            "--ids-out",
            metavar="FILE",
            help="Write request_id, row, id and target of each predicted row (CSV).",
            show_default=False,
        ),
    ] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="Log level [WARNING].", show_default=False)
    ] = None,
) -> int:
    """Send a table's rows through the model server's REST API (python -m lib.loop.replay).

    A bounded, paced stream that fills the server's prediction log for the monitor stage; only
    the model's input columns are sent. Exit codes: 0 every row predicted, 1 some rows failed or
    were not sent, 2 usage error or no server, 130 interrupted.
    """
    from lib.loop.replay import cli

    argv = [source] if source else []
    argv += flags(
        url=url, allow_remote=allow_remote, rows=rows, max_rows=max_rows,
        max_seconds=max_seconds, rate=rate, batch_size=batch_size, concurrency=concurrency,
        timeout=timeout, retries=retries, ids_out=ids_out, no_progress=no_progress,
        log_level=log_level,
    )  # fmt: skip
    return cli.main(argv + layer_args(presets, overrides))


@exits
def lineage(
    request_id: Annotated[
        str,
        typer.Argument(
            metavar="REQUEST_ID", help="A served request's id (its X-Request-ID header)."
        ),
    ],
    presets: Presets = None,
    overrides: Overrides = None,
) -> int:
    """Print a served prediction's lineage as JSON (python -m lib.loop.lineage).

    Its rows and predictions, the model version, its MLflow runs, params digest, git commit and
    training data manifest, and the monitor runs whose window held it.
    """
    from lib.loop import lineage as loop_lineage

    return loop_lineage.main([request_id, *layer_args(presets, overrides)])


@exits
def drift(
    sources: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[FILE|FOLDER]...",
            help="Parquet files or folders [the champion's prediction log].",
            show_default=False,
        ),
    ] = None,
    window_rows: Annotated[
        int | None,
        typer.Option(
            "--window-rows",
            min=1,
            help="Rows per window [windows by --period].",
            show_default=False,
        ),
    ] = None,
    period: Annotated[
        str, typer.Option("--period", help="Period of the time column: D, W, M.")
    ] = "W",
    backend: Annotated[
        str, typer.Option("--backend", help="stream (this process) or dask (a cluster).")
    ] = "stream",
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="A dask.distributed scheduler address.", show_default=False
        ),
    ] = None,
    presets: Presets = None,
    overrides: Overrides = None,
) -> int:
    """Check a log of any size for drift, per window (python -m lib.monitoring.large_log).

    Reads the Parquet files a batch at a time into per-window summaries: memory does not grow
    with the log. Same columns, methods and thresholds as the monitor stage.
    """
    from lib.monitoring import large_log

    args = [str(s) for s in sources or []]
    args += ["--period", period, "--backend", backend]
    if window_rows is not None:
        args += ["--window-rows", str(window_rows)]
    if scheduler:
        args += ["--scheduler", scheduler]
    return large_log.main([*args, *layer_args(presets, overrides)])
