"""Request ids, Prometheus counts and latency, and the body-size limit: one pure ASGI layer."""

from __future__ import annotations

import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import Fault, error_response
from server.metrics import Metrics


class _TooLarge(Exception):
    """The body grew past the limit while it was being read."""


class GuardMiddleware:
    """Name, count and time every request; refuse bodies over ``max_body`` bytes with a 413.

    Pure ASGI rather than ``BaseHTTPMiddleware``: it adds next to nothing to a request.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if self._declared_too_large(scope):
            await self._refuse(scope, receive, send)
            self._count(scope, 413, started)
            return
        status = {"code": 500}  # stays 500 when an error escapes before any answer started
        request_id = uuid.uuid4().hex
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                # every answer names its request: the prediction log's key for labels and lineage
                # (the MLflow protocol's body has no room for it)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        scope.setdefault("state", {})["request_id"] = request_id
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            status["code"] = 413
            await self._refuse(scope, receive, send)
        finally:
            self.metrics.in_flight.dec()
            self._count(scope, status["code"], started)

    def _declared_too_large(self, scope: Scope) -> bool:
        length = dict(scope.get("headers") or []).get(b"content-length")
        return length is not None and length.isdigit() and int(length) > self.max_body

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = Fault(
            413, "body_too_large", f"the body exceeds {self.max_body:,} bytes; send smaller batches"
        )
        await error_response(scope["path"], fault)(scope, receive, send)

    def _count(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", "unmatched")
        self.metrics.requests.labels(path, str(status)).inc()
        self.metrics.latency.labels(path).observe(time.perf_counter() - started)
