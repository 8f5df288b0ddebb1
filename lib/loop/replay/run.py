"""One replay: rows to requests, sent, summarised; the request ids written out."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from lib.core.atomic import atomic_path
from lib.core.errors import DataValidationError
from lib.core.logs import get_logger
from lib.loop.replay.config import ReplayConfig, ReplaySummary
from lib.loop.replay.sender import Progress, Sender, client_for, server_model
from lib.loop.replay.source import request_rows

log = get_logger(__name__)


def replay(
    frame: pd.DataFrame,
    config: ReplayConfig,
    *,
    source: str = "the table",
    transport: httpx.BaseTransport | None = None,
) -> ReplaySummary:
    """Send ``frame``'s rows to the server's predict route and summarise what came back.

    Parameters
    ----------
    frame
        Rows in the order to send them; only the served model's input columns (and the id
        column, when the model has one and the table holds it) are sent.
    config
        Target and bounds.
    source
        Names the table in error messages.
    transport
        An httpx transport (tests pass a mock); ``None`` uses the network.

    Returns
    -------
    ReplaySummary
        Counts, failures by status, speed, latency, model versions and request ids.

    Raises
    ------
    ServerUnavailableError
        When the server cannot be reached or has no model, before any row is sent.
    DataValidationError
        When ``frame`` lacks a column the served model needs.
    """
    with client_for(config, transport) as client:
        info = server_model(client, config)
        schema = info.get("schema") or {}
        features = [str(f["name"]) for f in schema.get("features", [])]
        missing = [c for c in features if c not in frame.columns]
        if missing:
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            raise DataValidationError(
                f"{source}: the served model needs column(s) {shown}, which the table lacks; "
                "replay a table with the model's input columns (GET /model lists them)",
                path=source,
                column=missing[0],
                check="missing_column",
            )
        planned = _planned_rows(len(frame), config)
        # the table's id column too, when it has one: the server echoes and logs it, so labels
        # that come back later join the logged rows by it
        key = schema.get("id_column")
        sent = (
            [*features, key] if key and key in frame.columns and key not in features else features
        )
        rows = request_rows(frame.head(planned), sent)
        size = config.batch_size
        payloads = rows if size == 1 else [rows[i : i + size] for i in range(0, len(rows), size)]
        # Encoded with the standard library: a NaN that slipped through is sent as NaN for the
        # server to name, instead of an encoder silently turning it into null.
        bodies = [json.dumps(p, separators=(",", ":")).encode() for p in payloads]
        dropped = [c for c in frame.columns if c not in sent]
        log.info(
            "replay_start",
            url=config.url + config.route,
            rows=planned,
            requests=len(bodies),
            dropped_columns=dropped,
            rate=config.rate,
            concurrency=config.concurrency,
        )
        with _bar(planned, config.progress) as bar:
            sender = Sender(client, config, bodies, planned, bar)
            sender.run()
        seconds = time.monotonic() - sender.t0
    summary = _summarise(sender.state, config, planned, seconds, info)
    log.info("replay_done", rows_ok=summary.rows_ok, rows_failed=summary.rows_failed)
    return summary


def _planned_rows(available: int, config: ReplayConfig) -> int:
    if config.rows is not None:
        return min(config.rows, available)
    if available > config.max_rows:
        log.warning("replay_capped", rows=available, cap=config.max_rows)
    return min(available, config.max_rows)


@contextlib.contextmanager
def _bar(total: int, show: bool) -> Iterator[Any]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="row", desc="replay", disable=not show, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


def _summarise(
    state: Progress, config: ReplayConfig, planned: int, seconds: float, info: Mapping[str, Any]
) -> ReplaySummary:
    outcomes = sorted(state.outcomes, key=lambda o: o.start)
    good = [o for o in outcomes if o.status == "200"]
    bad = [o for o in outcomes if o.status != "200"]
    failed: Counter[str] = Counter()
    first_errors: dict[str, str] = {}
    for o in bad:
        failed[o.status] += o.end - o.start
        first_errors.setdefault(o.status, o.message or "")
    versions: Counter[str] = Counter()
    for o in good:
        versions[str(o.version)] += o.end - o.start
    latencies = np.array([o.latency for o in outcomes if o.latency is not None]) * 1000
    p50, p99 = (
        (float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)))
        if latencies.size
        else (None, None)
    )
    sizes = [o.end - o.start for o in good]
    answered = pd.DataFrame(
        {
            "request_id": np.repeat([o.request_id for o in good], sizes).astype(object),
            "row": np.concatenate([np.arange(n) for n in sizes]) if sizes else np.array([], int),
            "position": np.concatenate([np.arange(o.start, o.end) for o in good])
            if good
            else np.array([], int),
        }
    )
    rows_sent = sum(o.end - o.start for o in outcomes)
    by_time = seconds if seconds > 0 else float("nan")
    return ReplaySummary(
        url=config.url,
        route=config.route,
        rows_planned=planned,
        rows_sent=rows_sent,
        rows_ok=sum(sizes),
        rows_failed=rows_sent - sum(sizes),
        requests=len(outcomes),
        retries=state.retries,
        seconds=seconds,
        requests_per_second=len(outcomes) / by_time,
        rows_per_second=rows_sent / by_time,
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        failed_by_status=dict(failed),
        first_errors=first_errors,
        model_versions=dict(versions),
        first_request_id=good[0].request_id if good else None,
        last_request_id=good[-1].request_id if good else None,
        stopped=state.stopped if rows_sent < planned else None,
        model_name=info.get("name"),
        target=(info.get("schema") or {}).get("target"),
        answered=answered,
    )


def write_ids(
    summary: ReplaySummary, frame: pd.DataFrame, path: Path, *, id_column: str | None
) -> Path:
    """Write the request id of every predicted row, with its id and true target, atomically.

    The columns are ``request_id``, ``row`` (its place in the request), then ``id_column`` and
    the model's target when ``frame`` has them: labels posted back later join the prediction log
    on ``request_id`` and ``row`` (``monitor.label_key``'s default for the log).

    Parameters
    ----------
    summary
        The replay's summary.
    frame
        The replayed table (positions in ``summary.answered`` index its rows).
    path
        The CSV file to write.
    id_column
        The table's id column (``data.id_column``), or None.

    Returns
    -------
    Path
        ``path``.
    """
    answered = summary.answered.sort_values("position", kind="stable")
    positions = answered["position"].to_numpy(dtype=np.int64)
    out = answered[["request_id", "row"]].reset_index(drop=True)
    for column in (id_column, summary.target):
        if column and column in frame.columns and column not in out.columns:
            out[column] = frame[column].to_numpy()[positions]
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
    return path
