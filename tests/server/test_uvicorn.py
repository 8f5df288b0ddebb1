"""A real `python -m server` process on a free loopback port: start, serve, stop gracefully."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.server import helpers

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def real_server(served_root, tmp_path, **settings: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """The tiny champion served by a real process, its log under ``served_root``."""
    with helpers.real_server(
        served_root / "data", served_root / "mlruns", tmp_path / "server.log", **settings
    ) as served:
        yield served


def test_real_server_serves_and_stops_cleanly(served_root, test_rows, tmp_path):
    folder = served_root / "data" / "predictions" / "quire-churn"
    before = set(folder.glob("part-*.parquet")) if folder.exists() else set()
    with real_server(served_root, tmp_path, log_flush_seconds="60") as (base, proc):
        with httpx.Client(base_url=base, timeout=10) as client:
            answers = [client.post("/predict", json=r) for r in test_rows[:20]]
            assert all(a.status_code == 200 for a in answers)
            assert client.post("/predict", json={}).status_code == 422
            assert client.get("/health/live").status_code == 200
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    # uvicorn re-raises the signal once its graceful shutdown is done.
    assert code in (0, -signal.SIGTERM)
    written = set(folder.glob("part-*.parquet")) - before
    assert len(written) == 1  # the buffered rows were flushed at shutdown


def test_sigterm_lets_accepted_requests_finish(served_root, test_rows, tmp_path):
    big = (test_rows * 250)[:10_000]  # each request takes a while to check and predict
    with real_server(served_root, tmp_path, prediction_log="false") as (base, proc):
        with ThreadPoolExecutor(3) as pool:
            futures = [
                pool.submit(httpx.post, f"{base}/predict/batch", json=big, timeout=120)
                for _ in range(3)
            ]
            _wait_in_flight(base, 3)  # accepted and being worked on
            proc.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(len(a.json()["predictions"]) == len(big) for a in answers)
    with pytest.raises(httpx.TransportError):  # and then it is gone
        httpx.get(f"{base}/health/live", timeout=2)


def _wait_in_flight(base: str, requests: int, seconds: float = 60) -> None:
    """Wait until the server has taken all ``requests`` and is still answering one of them.

    Taken means in flight (besides this /metrics request) or already answered: on a busy
    machine the event loop checks one request's rows at a time, so three may never be in
    flight together, but SIGTERM must still find at least one unfinished.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lines = httpx.get(f"{base}/metrics", timeout=10).text.splitlines()
        line = next(x for x in lines if x.startswith("quire_requests_in_flight "))
        busy = float(line.split()[1]) - 1
        done = sum(
            float(x.split()[1])
            for x in lines
            if x.startswith('quire_requests_total{route="/predict/batch"')
        )
        if busy >= 1 and busy + done >= requests:
            return
        time.sleep(0.02)
    raise AssertionError(f"the server did not take {requests} requests in {seconds} s")


def test_invalid_parameters_in_the_environment_are_one_line_and_exit_2(tmp_path):
    import os
    import sys

    from lib.core.paths import PROJECT_ROOT

    env = {**os.environ, "QUIRE__TRAIN__CV_FOLDS": "abc", "QUIRE__PROJECT__DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "server"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: invalid parameters:")
    assert "QUIRE__TRAIN__CV_FOLDS" in done.stderr and "Traceback" not in done.stderr
