"""`python -m server`: serve the champion with uvicorn on 127.0.0.1 (settings from the env)."""

from __future__ import annotations

import os

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lib.core import startup
from server.config import Settings
from server.main import create_app

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
    Written against uvicorn 0.54's ``HttpToolsProtocol``.
    """

    _draining = False
    _mid_request = False  # a request's first bytes are in, its headers are not complete

    def on_message_begin(self) -> None:
        """Note that a request has begun (its cycle only exists once its headers are read)."""
        super().on_message_begin()
        self._mid_request = True

    def on_headers_complete(self) -> None:
        """Start the request; while draining, its answer closes the connection."""
        super().on_headers_complete()
        self._mid_request = False
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False

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


def main() -> int:
    """Start one uvicorn worker; SIGINT/SIGTERM finish accepted requests, then stop.

    Starts as every Quire command does (:mod:`lib.core.startup`): invalid parameters in the
    environment are one ``error:`` line and exit code 2, not a traceback.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    startup.start_logging("INFO")
    return startup.guarded(_serve)


def _serve() -> int:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        http=DrainingProtocol,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
