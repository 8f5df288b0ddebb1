"""A real `python -m server` process on a free loopback port: start, serve, stop gracefully."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from lib.paths import PROJECT_ROOT
from tests.server.helpers import free_port, wait_until_ready

pytestmark = pytest.mark.slow


def test_real_server_serves_and_stops_cleanly(served_root, test_rows):
    port = free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "QUIRE_SERVER_PORT": str(port),
        "QUIRE_SERVER_LOG_FLUSH_SECONDS": "60",
        "QUIRE__PROJECT__DATA_DIR": str(served_root / "data"),
        "QUIRE__MLFLOW__STORE_DIR": str(served_root / "mlruns"),
    }
    folder = served_root / "data" / "predictions" / "quire-churn"
    before = set(folder.glob("part-*.parquet")) if folder.exists() else set()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(f"{base}/health/ready", proc, 90)
        with httpx.Client(base_url=base, timeout=10) as client:
            answers = [client.post("/predict", json=r) for r in test_rows[:20]]
            assert all(a.status_code == 200 for a in answers)
            assert client.post("/predict", json={}).status_code == 422
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    # uvicorn re-raises the signal once its graceful shutdown is done.
    assert code in (0, -signal.SIGTERM)
    written = set(folder.glob("part-*.parquet")) - before
    assert len(written) == 1  # the buffered rows were flushed at shutdown
