"""Several server processes on one port: uvicorn's supervisor, and what its workers share.

``python -m server --workers N`` (``QUIRE_SERVER_WORKERS``) binds the port once and starts N
worker processes (uvicorn's own supervisor: the kernel hands each new connection to one of
them; a worker that dies is started again). Each worker loads the model itself, and shares a
folder made for the run (:class:`server.peers.Peers`) with the others:

* ``metrics/``: prometheus_client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``), so
  ``/metrics`` on any worker reports the counters and histograms of all of them (summed), each
  worker's model version (``quire_model_info`` with a ``pid`` label) and the most recent live
  drift verdict of any worker;
* ``workers/<pid>``: one file per worker, so a reload knows whom to wait for;
* ``reload``: the last reload asked for; every worker watches it, and loads the model again
  when it changes (``POST /admin/reload`` on one worker reaches all), then writes
  ``ack-<pid>``.

The prediction log needs nothing more: each worker writes its own segment and parts
(:mod:`server.segments`), and a worker started again recovers the segment of the one that died.
SIGTERM to the supervisor reaches every worker, and each drains as a single server does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from lib.core import startup
from lib.core.logs import get_logger
from server.config import Settings
from server.peers import SHARED_ENV
from server.protocol import GRACEFUL_SECONDS, DrainingProtocol

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = get_logger("quire.server")


def serve(settings: Settings) -> int:
    """Serve with ``settings.workers`` processes; return the exit code once all have stopped.

    Returns 1 when a worker fails to start (its error is in the output above): uvicorn's
    supervisor then stops the others rather than start it again and again.
    """
    shared = Path(tempfile.mkdtemp(prefix="quire-server-"))
    metrics = Path(os.environ.get(METRICS_ENV) or shared / "metrics")
    metrics.mkdir(parents=True, exist_ok=True)
    for stale in metrics.glob("*.db"):  # files of an earlier run would add to the counts
        stale.unlink()
    os.environ[SHARED_ENV] = str(shared)
    os.environ[METRICS_ENV] = str(metrics)  # read by prometheus_client when a worker imports it
    config = uvicorn.Config(
        "server.workers:worker_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="warning",
        http=DrainingProtocol,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
    supervisor = Supervisor(config, sockets=[config.bind_socket()])
    log.info("workers", workers=settings.workers, port=settings.port, shared=str(shared))
    try:
        supervisor.run()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return 1 if supervisor.failed else 0


class Supervisor(Multiprocess):
    """uvicorn's supervisor; it remembers whether it stopped because a worker could not start."""

    failed = False

    def terminate_all(self) -> None:
        """Stop listening, then ask every worker to drain and stop.

        A listening socket closes only once no process holds it: were it to stay open while the
        workers drain, the kernel would go on accepting connections - a client that one worker
        answered with ``Connection: close`` reconnects at once - that no worker takes, and
        reset them (after the client sent its request) when the last copy closes. Shut down
        here, before any worker drains, a new connection is refused, which a client can retry
        elsewhere, as with one process.
        """
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # for every process that holds it, at once
            sock.close()
        super().terminate_all()

    def keep_subprocess_alive(self) -> None:
        """Start a dead worker again (uvicorn), or stop all when one failed at start-up."""
        super().keep_subprocess_alive()
        if any(p.exitcode == STARTUP_FAILURE for p in self.processes):
            self.failed = True


def worker_app() -> Any:
    """Build one worker's app (uvicorn calls this in each worker process)."""
    from server.main import create_app  # after the supervisor set the metrics folder

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    startup.start_logging("INFO")
    settings = Settings()
    DrainingProtocol.headers_timeout = settings.request_timeout_seconds
    return create_app(settings)
