"""Paced, bounded, retried requests to the predict route, and the served model's description."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from lib.core.errors import ServerUnavailableError
from lib.core.retry import retrying
from lib.loop.replay.config import ReplayConfig

_BACKOFF_CAP = 5.0  # seconds: the longest wait between two attempts


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
class Progress:
    """Shared between the sending threads (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    next_row: int = 0
    retries: int = 0
    failed_rows: int = 0
    outcomes: list[_Outcome] = field(default_factory=list)
    stopped: str | None = None


class Sender:
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
        self.state = Progress()
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
        """Post one slice; retry a 503 or a refused connection with backoff until halted."""
        body = self.bodies[start // self.config.batch_size]
        tried: list[_Outcome] = []

        def attempt() -> tuple[_Outcome, bool]:
            if tried and self.halt.is_set():  # stopped while waiting to retry: no new attempt
                return tried[-1], False
            outcome, retry = self._attempt(start, end, body)
            tried.append(outcome)
            return outcome, retry

        policy = retrying(
            self.config.retries,
            self.config.backoff,
            retry_if=lambda result: bool(result[1]) and not self.halt.is_set(),
            cap=_BACKOFF_CAP,
            sleep=self.halt.wait,
            on_retry=self._count_retry,
        )
        outcome: _Outcome = policy(attempt)[0]
        return outcome

    def _count_retry(self) -> None:
        with self.state.lock:
            self.state.retries += 1

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


def server_model(client: httpx.Client, config: ReplayConfig) -> dict[str, Any]:
    """Return the served model's ``GET /model`` answer, retrying while it is not ready.

    Raises
    ------
    ServerUnavailableError
        When nothing answers at the URL, it asks for an API key, or it has no model.
    """
    url = config.url

    def ask() -> httpx.Response | str:
        """``GET /model`` once; a transport failure comes back as its description."""
        try:
            return client.get("/model")
        except httpx.TransportError as exc:
            return _short(exc)

    answer = retrying(
        config.retries,
        config.backoff,
        retry_if=lambda got: isinstance(got, str) or got.status_code == 503,
        cap=_BACKOFF_CAP,
    )(ask)
    if isinstance(answer, str):
        raise ServerUnavailableError(
            f"no server answers at {url} ({answer}); start one with `make serve` (or "
            "python -m server), or point --url (or QUIRE_SERVER_HOST and QUIRE_SERVER_PORT) at it",
            url=url,
        )
    if answer.status_code == 200:
        with contextlib.suppress(ValueError):
            info: dict[str, Any] = answer.json()
            if isinstance(info, dict) and isinstance(info.get("schema"), dict):
                return info
    raise _refused(url, answer)


def _refused(url: str, answer: httpx.Response) -> ServerUnavailableError:
    """Return the error for a ``GET /model`` answer that is not a model's description."""
    if answer.status_code == 200:
        message = f"{url}/model answered 200 without a model schema; is this a Quire model server?"
        return ServerUnavailableError(f"{message} Check --url", url=url)
    if answer.status_code == 401:
        return ServerUnavailableError(
            f"{url} requires an API key; set QUIRE_SERVER_API_KEY to the server's key", url=url
        )
    if answer.status_code == 503:
        return ServerUnavailableError(
            f"{url} has no model loaded (503 {_error(answer)}); check the server's log", url=url
        )
    return ServerUnavailableError(
        f"{url}/model answered {answer.status_code} ({_error(answer)}); is this a "
        "Quire model server? Check --url",
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
