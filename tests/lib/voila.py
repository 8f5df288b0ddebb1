"""Shared by the dashboard tests: the Voila dashboard served over a results folder."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from lib.monitoring.dashboard import RESULTS_ENV, voila_command
from tests.server.helpers import free_port


@contextlib.contextmanager
def voila_dashboard(results: Path) -> Iterator[str]:
    """Serve the dashboard over ``results`` on 127.0.0.1; its base URL, until the block ends."""
    port = free_port()
    env = {**os.environ, RESULTS_ENV: str(results), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        voila_command(port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/api/kernelspecs", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.3)
    try:
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
