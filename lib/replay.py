"""Replay a table's rows through the model server's REST API as a bounded, paced stream.

This fills the server's prediction log, which the monitor stage reads with
``monitor.current: log``. Only the served model's input columns are sent (read from
``GET /model``), so the target, the id column and anything else the request schema would reject
never leave. Every run is bounded: a row cap, a time limit, a rate, a concurrency limit, a
per-request timeout and a bounded number of retries. Only loopback servers are targeted unless
remote targets are allowed explicitly.

``python -m lib.replay --help`` lists the options.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from lib.atomic import atomic_path
from lib.errors import DataValidationError, ParamsError, ServerUnavailableError
from lib.logs import get_logger
from lib.params import Params, add_layer_arguments

log = get_logger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
MAX_ROWS = 100_000  # rows per run unless max_rows is raised explicitly
MAX_CONCURRENCY = 32
MAX_BATCH_ROWS = 10_000  # the server's default QUIRE_SERVER_MAX_BATCH_ROWS
MAX_RETRIES = 10
_BACKOFF_CAP = 5.0  # seconds: the longest wait between two attempts
_EXIT_OK, _EXIT_FAILED, _EXIT_USAGE, _EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class ReplayConfig:
    """Where to send rows, and the bounds of one replay.

    Parameters
    ----------
    url
        The server's base URL; only a loopback host unless ``allow_remote``.
    rows
        Rows to send from the top of the table; ``None`` sends all of them (up to ``max_rows``).
    max_rows
        The hard cap on rows per run; a table longer than it is cut to it.
    max_seconds
        No request starts after this many seconds.
    rate
        Rows per second at most; ``0`` sends as fast as the server answers.
    batch_size
        Rows per request: ``1`` posts single rows to ``/predict``, more use ``/predict/batch``.
    concurrency
        Requests in flight at once.
    timeout
        Seconds per request attempt.
    retries
        Further attempts after a 503 or a refused connection, with exponential backoff.
    backoff
        Seconds before the first retry; doubled on each further one (at most 5 s).
    allow_remote
        Allow a host that is not loopback.
    api_key
        Sent as ``X-API-Key`` when the server requires one.
    progress
        Show a progress bar (on stderr).
    """

    url: str = DEFAULT_URL
    rows: int | None = None
    max_rows: int = MAX_ROWS
    max_seconds: float = 300.0
    rate: float = 0.0
    batch_size: int = 1
    concurrency: int = 4
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.2
    allow_remote: bool = False
    api_key: str | None = field(default=None, repr=False)
    progress: bool = True

    def __post_init__(self) -> None:
        checks = [
            ("--rows", self.rows is None or self.rows >= 1, "at least 1"),
            ("--max-rows", self.max_rows >= 1, "at least 1"),
            ("--max-seconds", self.max_seconds > 0, "above 0"),
            ("--rate", self.rate >= 0, "0 (no limit) or above"),
            ("--batch-size", 1 <= self.batch_size <= MAX_BATCH_ROWS, f"1 to {MAX_BATCH_ROWS:,}"),
            ("--concurrency", 1 <= self.concurrency <= MAX_CONCURRENCY, f"1 to {MAX_CONCURRENCY}"),
            ("--timeout", self.timeout > 0, "above 0"),
            ("--retries", 0 <= self.retries <= MAX_RETRIES, f"0 to {MAX_RETRIES}"),
            ("--backoff", self.backoff >= 0, "0 or above"),
        ]
        for flag, ok, allowed in checks:
            if not ok:
                value = getattr(self, flag.removeprefix("--").replace("-", "_"))
                raise ParamsError(f"{flag} {value}: expected {allowed}", key=flag)
        if self.rows is not None and self.rows > self.max_rows:
            raise ParamsError(
                f"--rows {self.rows:,} exceeds the cap of {self.max_rows:,} rows per run; raise "
                f"--max-rows to {self.rows} if you mean it",
                key="--rows",
            )
        object.__setattr__(self, "url", check_url(self.url, allow_remote=self.allow_remote))

    @property
    def route(self) -> str:
        """Return the route rows are posted to."""
        return "/predict" if self.batch_size == 1 else "/predict/batch"


@dataclass(frozen=True)
class ReplaySummary:
    """What one replay did.

    ``failed_by_status`` counts failed rows by HTTP status code, or by ``connect_error``,
    ``timeout``, ``transport_error`` or ``bad_response`` when no usable answer came back;
    ``first_errors`` holds the first message seen for each. ``answered`` has one line per row the
    server predicted: ``request_id``, ``row`` (its place in that request, as the prediction log
    records it) and ``position`` (its place in the replayed table).
    """

    url: str
    route: str
    rows_planned: int
    rows_sent: int
    rows_ok: int
    rows_failed: int
    requests: int
    retries: int
    seconds: float
    requests_per_second: float
    rows_per_second: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    failed_by_status: dict[str, int]
    first_errors: dict[str, str]
    model_versions: dict[str, int]
    first_request_id: str | None
    last_request_id: str | None
    stopped: str | None  # why rows were left unsent: max_seconds or interrupted
    model_name: str | None
    target: str | None
    answered: pd.DataFrame = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Return whether every planned row was sent and predicted."""
        return self.rows_ok == self.rows_planned and self.rows_failed == 0

    def format(self) -> str:
        """Return the summary as a few readable lines."""
        p50, p99 = self.latency_p50_ms, self.latency_p99_ms
        latency = (
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms" if p50 is not None and p99 is not None else "-"
        )
        failed = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.failed_by_status.items()))
        versions = ", ".join(f"v{k}: {v:,} rows" for k, v in sorted(self.model_versions.items()))
        lines = [
            f"replay to {self.url}{self.route}: {self.rows_sent:,} of {self.rows_planned:,} rows "
            f"sent in {self.seconds:.1f} s ({self.requests:,} requests, "
            f"{self.requests_per_second:.1f} req/s, {self.rows_per_second:.1f} rows/s)",
            f"ok: {self.rows_ok:,} rows; failed: {self.rows_failed:,} rows"
            + (f" ({failed})" if failed else "")
            + (f"; retries: {self.retries:,}" if self.retries else ""),
            f"latency: {latency}",
            f"model {self.model_name}: {versions or 'no answers'}",
            f"request ids: first {self.first_request_id}, last {self.last_request_id}",
        ]
        lines += [f"  {code}: {message}" for code, message in sorted(self.first_errors.items())]
        if self.stopped == "max_seconds":
            lines.append("stopped at --max-seconds before every row was sent")
        elif self.stopped == "interrupted":
            lines.append("interrupted before every row was sent")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Target and source


def check_url(url: str, *, allow_remote: bool = False) -> str:
    """Return ``url`` without a trailing slash, if it is an HTTP URL of an allowed host.

    Parameters
    ----------
    url
        The server's base URL, e.g. ``http://127.0.0.1:8000``.
    allow_remote
        Allow hosts that are not loopback (``localhost``, ``127.0.0.0/8``, ``::1``).

    Returns
    -------
    str
        The normalised URL.

    Raises
    ------
    ParamsError
        For another scheme, no host, or a host that is not loopback without ``allow_remote``.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ParamsError(f"--url {url!r}: not a valid URL ({exc})", key="--url") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ParamsError(
            f"--url {url!r}: expected http://HOST:PORT, e.g. {DEFAULT_URL}", key="--url"
        )
    if not allow_remote and not _is_loopback(parsed.host):
        raise ParamsError(
            f"--url {url!r}: host {parsed.host!r} is not loopback; replays target 127.0.0.1 "
            "unless you pass --allow-remote (and may load the server you point them at)",
            key="--url",
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # another host name: it could resolve anywhere
        return False


def default_url(env: Mapping[str, str]) -> str:
    """Return the server URL from ``QUIRE_SERVER_HOST`` and ``QUIRE_SERVER_PORT`` (as the server).

    A wildcard bind address (``0.0.0.0``, ``::``) is reached through loopback.
    """
    host = env.get("QUIRE_SERVER_HOST") or "127.0.0.1"
    port = env.get("QUIRE_SERVER_PORT") or "8000"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port}"


def load_source(params: Params, source: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read the table to replay: CSV/Parquet files, or the generator's production batch.

    Parameters
    ----------
    params
        Gives ``data.csv`` for CSV files and, without ``source``, the generator settings.
    source
        A path or glob; ``None`` uses the generator's drifted production batch for ``params``
        (written to the raw data folder first if these parameters never wrote it).

    Returns
    -------
    tuple of (pandas.DataFrame, str)
        The rows in file order, and where they came from.

    Raises
    ------
    ParamsError
        Without ``source`` when the parameters define no production batch.
    DataValidationError
        When no file matches or a file cannot be read.
    """
    from lib.readers import expand_source, read_table

    if source is None:
        from lib.generator import generate
        from lib.ingest import raw_dir

        if params.data.source != "generator":
            raise ParamsError(
                f"no file given and data.source is {params.data.source!r}: only the built-in "
                "generator has a production batch; pass a CSV/Parquet file to replay",
                key="data.source",
            )
        if params.generator.production.rows == 0:
            raise ParamsError(
                "no file given and generator.production.rows is 0; set it above 0 "
                "(-p generator.production.rows=5000) or pass a CSV/Parquet file",
                key="generator.production.rows",
            )
        paths = [generate(params.generator, params.project.seed, raw_dir(params), production=True)]
    else:
        paths = expand_source(source)
    frames = [read_table(p, params.data.csv) for p in paths]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame, ";".join(str(p) for p in paths)


def request_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Return ``frame``'s rows as JSON-ready dicts of ``columns`` only.

    Missing values (NaN, NaT, None, pd.NA) become ``None``; dates become ISO strings; NumPy
    scalars become Python values. Infinity stays (the server rejects it, naming the row).

    Parameters
    ----------
    frame
        The table.
    columns
        The fields to send, in order; each must be a column of ``frame``.

    Returns
    -------
    list of dict
        One ``{field: value}`` per row.
    """
    values = [_json_values(frame[c]) for c in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def _json_values(column: pd.Series) -> list[Any]:
    missing = column.isna().to_numpy()
    return [None if gone else _plain(v) for v, gone in zip(column.tolist(), missing, strict=True)]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, datetime | date):  # pandas Timestamps are datetimes
        return value.isoformat()
    return value


# --------------------------------------------------------------------------------------------
# Sending


@dataclass
class _Outcome:
    """One request's fate."""

    start: int
    end: int
    status: str  # "200", another status code, or a transport failure's name
    request_id: str | None = None
    version: str | None = None
    latency: float | None = None  # seconds of the last attempt that got an answer
    message: str | None = None


@dataclass
class _Progress:
    """Shared between the sending threads (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    next_row: int = 0
    retries: int = 0
    failed_rows: int = 0
    outcomes: list[_Outcome] = field(default_factory=list)
    stopped: str | None = None


class _Sender:
    """Hands out consecutive slices of rows to worker threads and posts them, paced."""

    def __init__(
        self,
        client: httpx.Client,
        config: ReplayConfig,
        bodies: list[bytes],
        n_rows: int,
        bar: Any,
    ) -> None:
        self.client = client
        self.config = config
        self.bodies = bodies
        self.n_rows = n_rows
        self.bar = bar
        self.state = _Progress()
        self.halt = threading.Event()
        self.t0 = time.monotonic()
        self.deadline = self.t0 + config.max_seconds

    def run(self) -> None:
        """Send every slice on ``concurrency`` threads; Ctrl-C stops at the next request."""
        n_requests = len(self.bodies)
        workers = [
            threading.Thread(target=self._work, name=f"replay-{i}", daemon=True)
            for i in range(min(self.config.concurrency, n_requests))
        ]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.2)  # a bounded wait keeps Ctrl-C responsive
        except KeyboardInterrupt:
            self._stop("interrupted")
            for worker in workers:
                worker.join()

    def _stop(self, reason: str) -> None:
        with self.state.lock:
            self.state.stopped = self.state.stopped or reason
        self.halt.set()

    def _claim(self) -> tuple[int, int] | None:
        """Return the next slice once the rate allows it, or None when done or out of time."""
        size = self.config.batch_size
        with self.state.lock:
            if self.halt.is_set() or self.state.next_row >= self.n_rows:
                return None
            start = self.state.next_row
            end = min(start + size, self.n_rows)
            self.state.next_row = end
        # Paced so that by any time t at most rate * t rows have gone out.
        due = self.t0 + end / self.config.rate if self.config.rate else time.monotonic()
        if due > self.deadline or time.monotonic() >= self.deadline:
            self._stop("max_seconds")
            return None
        if self.halt.wait(max(0.0, due - time.monotonic())):
            return None
        return start, end

    def _work(self) -> None:
        while (span := self._claim()) is not None:
            outcome = self._send(*span)
            with self.state.lock:
                self.state.outcomes.append(outcome)
                if outcome.status != "200":
                    self.state.failed_rows += outcome.end - outcome.start
                self.bar.update(outcome.end - outcome.start)
                self.bar.set_postfix(errors=self.state.failed_rows, refresh=False)

    def _send(self, start: int, end: int) -> _Outcome:
        body = self.bodies[start // self.config.batch_size]
        retries = self.config.retries
        for attempt in range(retries + 1):
            outcome, retry = self._attempt(start, end, body)
            if not retry or attempt == retries or self.halt.is_set():
                return outcome
            with self.state.lock:
                self.state.retries += 1
            pause = min(self.config.backoff * 2**attempt, _BACKOFF_CAP)
            if self.halt.wait(pause):
                return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, start: int, end: int, body: bytes) -> tuple[_Outcome, bool]:
        """Post once; return the outcome and whether a retry is safe and worthwhile."""
        began = time.perf_counter()
        try:
            answer = self.client.post(self.config.route, content=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # The request never reached the server: retrying cannot predict a row twice.
            return _Outcome(start, end, "connect_error", message=_short(exc)), True
        except httpx.TimeoutException as exc:
            # The server may have predicted (and logged) the rows: not retried.
            return _Outcome(start, end, "timeout", message=_short(exc)), False
        except httpx.TransportError as exc:
            return _Outcome(start, end, "transport_error", message=_short(exc)), False
        latency = time.perf_counter() - began
        status = str(answer.status_code)
        if answer.status_code != 200:
            outcome = _Outcome(start, end, status, latency=latency, message=_error(answer))
            return outcome, answer.status_code == 503  # 503: no model loaded yet
        try:
            data = answer.json()
            request_id, version = str(data["request_id"]), str(data["model"]["version"])
            if len(data["predictions"]) != end - start:
                raise ValueError(f"{len(data['predictions'])} predictions for {end - start} rows")
        except (ValueError, KeyError, TypeError) as exc:
            return _Outcome(start, end, "bad_response", latency=latency, message=_short(exc)), False
        return _Outcome(start, end, status, request_id, version, latency), False


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def _error(answer: httpx.Response) -> str:
    """Return the message of the server's error body (or the start of the raw text)."""
    try:
        error = answer.json()["error"]
        return f"{error['code']}: {error['message']}"[:200]
    except (ValueError, KeyError, TypeError):
        return answer.text[:200]


# --------------------------------------------------------------------------------------------
# The replay


def server_model(client: httpx.Client, config: ReplayConfig) -> dict[str, Any]:
    """Return the served model's ``GET /model`` answer, retrying while it is not ready.

    Raises
    ------
    ServerUnavailableError
        When nothing answers at the URL, it asks for an API key, or it has no model.
    """
    url = config.url
    problem = ""
    for attempt in range(config.retries + 1):
        if attempt:
            time.sleep(min(config.backoff * 2 ** (attempt - 1), _BACKOFF_CAP))
        try:
            answer = client.get("/model")
        except httpx.TransportError as exc:
            problem = _short(exc)
            continue
        if answer.status_code == 200:
            with contextlib.suppress(ValueError):
                info: dict[str, Any] = answer.json()
                if isinstance(info, dict) and isinstance(info.get("schema"), dict):
                    return info
            raise ServerUnavailableError(
                f"{url}/model answered 200 without a model schema; is this a Quire model "
                "server? Check --url",
                url=url,
            )
        if answer.status_code == 401:
            raise ServerUnavailableError(
                f"{url} requires an API key; set QUIRE_SERVER_API_KEY to the server's key",
                url=url,
            )
        if answer.status_code != 503:
            raise ServerUnavailableError(
                f"{url}/model answered {answer.status_code} ({_error(answer)}); is this a "
                "Quire model server? Check --url",
                url=url,
            )
        problem = f"503 {_error(answer)}"
    if problem.startswith("503"):
        raise ServerUnavailableError(
            f"{url} has no model loaded ({problem}); check the server's log", url=url
        )
    raise ServerUnavailableError(
        f"no server answers at {url} ({problem}); start one with `make serve` "
        "(or python -m server), or point --url (or QUIRE_SERVER_HOST and QUIRE_SERVER_PORT) at it",
        url=url,
    )


def client_for(config: ReplayConfig, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """Return an HTTP client for the server: base URL, API key, timeout, connection limits."""
    headers = {"content-type": "application/json"}
    if config.api_key:
        headers["x-api-key"] = config.api_key
    limits = httpx.Limits(
        max_connections=config.concurrency, max_keepalive_connections=config.concurrency
    )
    return httpx.Client(
        base_url=config.url,
        headers=headers,
        timeout=config.timeout,
        limits=limits,
        transport=transport,
    )


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
        Rows in the order to send them; only the served model's input columns are sent.
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
        rows = request_rows(frame.head(planned), features)
        size = config.batch_size
        payloads = rows if size == 1 else [rows[i : i + size] for i in range(0, len(rows), size)]
        # Encoded with the standard library: a NaN that slipped through is sent as NaN for the
        # server to name, instead of an encoder silently turning it into null.
        bodies = [json.dumps(p, separators=(",", ":")).encode() for p in payloads]
        dropped = [c for c in frame.columns if c not in features]
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
            sender = _Sender(client, config, bodies, planned, bar)
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
    state: _Progress, config: ReplayConfig, planned: int, seconds: float, info: Mapping[str, Any]
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


# --------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``python -m lib.replay``."""
    parser = argparse.ArgumentParser(
        prog="python -m lib.replay",
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
    add_layer_arguments(parser, "generator.production.rows=2000")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--log-level", default="WARNING", help="log level (default: WARNING)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    from lib.logs import configure_logging
    from lib.params import load_params
    from lib.runner import environment

    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    env = environment()
    try:
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
        params = load_params(args.params, args.overrides, env=env)
        with client_for(config) as client:  # before any data is read or generated
            server_model(client, config)
        frame, source = load_source(params, args.source)
        summary = replay(frame, config, source=source)
        if args.ids_out is not None:
            write_ids(summary, frame, args.ids_out, id_column=params.data.id_column)
    except (ParamsError, DataValidationError, ServerUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return _EXIT_INTERRUPTED
    print(summary.format())
    if summary.stopped == "interrupted":
        return _EXIT_INTERRUPTED
    return _EXIT_OK if summary.ok else _EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
