"""uvicorn's HTTP protocol with a draining graceful shutdown and a timeout on request headers."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.errors import Fault, error_response

DRAIN_SECONDS = 1.0  # how long an idle keep-alive connection may still send a request at shutdown
GRACEFUL_SECONDS = 20  # then requests still running are cancelled


class DrainingProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, but a graceful shutdown answers every request sent before it.

    uvicorn's own ``shutdown()`` closes every connection that is not answering a request at
    that instant: a keep-alive connection whose client is sending its next request (its bytes
    on the wire, or its headers half read) is reset, and that request lost. Here such a
    connection is drained instead: a request begun is read and answered with
    ``Connection: close``; a connection with nothing under way closes after
    :data:`DRAIN_SECONDS` without a request. New connections are refused meanwhile (uvicorn
    closes the listening socket), which a client can tell from a reset and retry elsewhere.

    Headers get the request timeout too (the app's middleware times the body): a connection
    that sends no complete request headers within ``headers_timeout`` seconds of opening, or of
    its request's first byte, gets a 408 and is closed, rather than holding its slot (and a
    graceful shutdown) indefinitely. Written against uvicorn 0.54's ``HttpToolsProtocol``.
    """

    headers_timeout = 30.0
    _draining = False
    _mid_request = False  # a request's first bytes are in, its headers are not complete
    _headers_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept the connection; its first request's headers are due within the timeout."""
        super().connection_made(transport)
        self._headers_timer = self.loop.call_later(self.headers_timeout, self._headers_too_slow)

    def on_message_begin(self) -> None:
        """Note that a request has begun (its cycle only exists once its headers are read)."""
        super().on_message_begin()
        self._mid_request = True
        if self._headers_timer is None:
            self._headers_timer = self.loop.call_later(self.headers_timeout, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        """Start the request; while draining, its answer closes the connection."""
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None
        super().on_headers_complete()
        self._mid_request = False
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection (and its headers timer)."""
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        """Answer 408 in the protocol of the path sent so far (if any), then close."""
        self._headers_timer = None
        if self.transport.is_closing():
            return
        if not self._mid_request:  # opened, and nothing sent at all: just close
            self.transport.close()
            return
        path = self.url.split(b"?")[0].decode("latin-1")
        reason = f"the request headers were not received within {self.headers_timeout:g} s"
        body = error_response(path, Fault(408, "request_timeout", reason)).body
        head = (
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + bytes(body))
        self.transport.close()

    def shutdown(self) -> None:
        """Answer the request under way, or wait briefly for one, then close."""
        self._draining = True
        if self.pipeline:  # the last request queued closes the connection
            self.pipeline[0][0].keep_alive = False
        elif self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        elif not self._mid_request:
            self.loop.call_later(DRAIN_SECONDS, self._close_if_idle)

    def _close_if_idle(self) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self._mid_request and not self.transport.is_closing():
            self.transport.close()
