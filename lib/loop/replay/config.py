"""Where a replay sends rows and its bounds; what it did."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
import pandas as pd

from lib.core.errors import ParamsError

DEFAULT_URL = "http://127.0.0.1:8000"
MAX_ROWS = 100_000  # rows per run unless max_rows is raised explicitly
MAX_CONCURRENCY = 32
MAX_BATCH_ROWS = 10_000  # the server's default QUIRE_SERVER_MAX_BATCH_ROWS
MAX_RETRIES = 10


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
