"""Request ids, Prometheus counts and latency, body size and time limits: one pure ASGI layer.

Every answer is counted by route template and status (``unmatched`` when no route matched),
the latency by route and status class (``2xx``, ``4xx``, ``5xx``), whatever ended the request:

| what ended it                                | status | the client gets                    |
|----------------------------------------------|--------|------------------------------------|
| the route's answer, or an error it raised    | its    | the answer                         |
| an exception no handler took (a bug)         | 500    | the protocol's stable error body   |
| a body over ``max_body`` bytes               | 413    | the protocol's error, then close   |
| a body not received within ``timeout`` s     | 408    | the protocol's error, then close   |
| the client hung up before its body was sent  | 499    | nothing (it is gone): one log line |

499 is nginx's "client closed request": no HTTP status says it, and it must not count as
either the client's 4xx or the server's 5xx fault. This layer is the outermost of the app's
own (Starlette's error middleware sits outside user middleware: an exception that reaches it
was never counted, so it is answered here instead).
"""

from __future__ import annotations

import asyncio
import time
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lib.core.logs import get_logger
from server.errors import Fault, answer_error, error_response
from server.metrics import Metrics

log = get_logger("quire.server")
CLIENT_CLOSED = 499


class _Refused(Exception):
    """The body broke a limit while it was being read; ``fault`` says which."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault


class _Disconnected(Exception):
    """The client hung up before it had sent its whole body."""


class GuardMiddleware:
    """Name, count and time every request; refuse bodies too large (413) or too slow (408).

    Pure ASGI rather than ``BaseHTTPMiddleware``: it adds next to nothing to a request.

    Parameters
    ----------
    app
        The application it wraps.
    metrics
        Where requests are counted and timed.
    max_body
        The largest body accepted, in bytes.
    timeout
        Seconds a client has to send its whole body, from the start of the request.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body: int, timeout: float) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        reader = _BodyReader(receive, self._declared(scope), self.max_body, self.timeout)
        sent = {"status": 0}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                # every answer names its request: the prediction log's key for labels and lineage
                # (the MLflow protocol's body has no room for it)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        scope.setdefault("state", {})["request_id"] = request_id
        self.metrics.in_flight.inc()
        status = 500  # unless an answer starts or a known ending says otherwise
        try:
            await self.app(scope, reader.receive, tracking_send)
            status = sent["status"] or 500
        except _Refused as refused:
            status = await self._answer(scope, tracking_send, sent, refused.fault, close=True)
        except _Disconnected:
            status = CLIENT_CLOSED
            log.info("client_disconnected", path=scope["path"], body_bytes=reader.received)
        except Exception as exc:  # a bug: answered and counted here, as every other request
            if sent["status"]:
                raise  # the answer has begun: only closing the connection can tell the client
            answer = answer_error(Request(scope), exc, self.metrics)
            await answer(scope, reader.receive, tracking_send)
            status = answer.status_code
        finally:
            self.metrics.in_flight.dec()
            self._count(scope, status, started)

    def _declared(self, scope: Scope) -> int | None:
        """Return the body's declared length (content-length); None when absent or unreadable."""
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                return int(value) if value.isdigit() else None
        return None

    async def _answer(
        self, scope: Scope, send: Send, sent: dict[str, int], fault: Fault, close: bool
    ) -> int:
        """Send ``fault`` in the protocol's shape unless an answer began; return the status."""
        if sent["status"]:
            return sent["status"]
        answer = error_response(scope["path"], fault)
        if close:  # the rest of the body is never read: this connection cannot be reused
            answer.headers["connection"] = "close"

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await answer(scope, nothing, send)
        return fault.status

    def _count(self, scope: Scope, status: int, started: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        self.metrics.requests.labels(route, str(status)).inc()
        self.metrics.latency.labels(route, f"{status // 100}xx").observe(
            time.perf_counter() - started
        )


class _BodyReader:
    """The app's ``receive``: refuses a body past the size limit or the time limit.

    A declared length over the limit is refused at the first read, once the route is known
    (so that the 413 is counted under its route); a body is read until its last message
    within ``timeout`` seconds of the request's start. After the body, ``receive`` is passed
    through untimed: it then only waits for the client to hang up.
    """

    def __init__(self, receive: Receive, declared: int | None, limit: int, timeout: float) -> None:
        self._receive = receive
        self._declared = declared
        self._limit = limit
        self._deadline = asyncio.get_running_loop().time() + timeout
        self._timeout = timeout
        self._done = False
        self.received = 0

    async def receive(self) -> Message:
        """Return the next ASGI message, raising :class:`_Refused` or :class:`_Disconnected`."""
        if self._done:
            return await self._receive()
        if self._declared is not None and self._declared > self._limit:
            raise _Refused(self._too_large())
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise _Refused(self._too_slow()) from None
        if message["type"] == "http.disconnect":
            raise _Disconnected
        self.received += len(message.get("body", b""))
        if self.received > self._limit:
            raise _Refused(self._too_large())
        self._done = not message.get("more_body", False)
        return message

    def _too_large(self) -> Fault:
        reason = f"the body exceeds {self._limit:,} bytes; send smaller batches"
        return Fault(413, "body_too_large", reason)

    def _too_slow(self) -> Fault:
        reason = (
            f"the body was not received within {self._timeout:g} s "
            f"({self.received:,} bytes arrived); send it at once, or in smaller batches"
        )
        return Fault(408, "request_timeout", reason)
