"""Shared by the server tests: free ports, waiting for a process to serve, MLflow payloads."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    """Poll ``url`` until it answers 200; fail with the process output if it exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            pytest.fail(
                f"the server exited with {proc.returncode}: {proc.stdout and proc.stdout.read()}"
            )
        time.sleep(0.3)
    pytest.fail(f"{url} not ready within {seconds} s")


@contextlib.contextmanager
def real_server(
    data_dir: Path, store_dir: Path, log: Path, **settings: str
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m server` on a free loopback port; yield its base URL and process.

    ``settings`` become ``QUIRE_SERVER_<NAME>`` variables. On exit the server gets SIGTERM: it
    finishes its requests and flushes the prediction log, then exits.
    """
    from lib.core.paths import PROJECT_ROOT

    port = free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "QUIRE_SERVER_PORT": str(port),
        "QUIRE__PROJECT__DATA_DIR": str(data_dir),
        "QUIRE__MLFLOW__STORE_DIR": str(store_dir),
        **{f"QUIRE_SERVER_{k.upper()}": v for k, v in settings.items()},
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=out
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_ready(f"{base}/health/ready", proc, 120)
            yield base, proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server (if it still runs) and wait for it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def mlflow_payloads(rows: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    """The same rows in each MLflow scoring format: name -> (content type, body)."""
    columns = list(rows[0])
    return {
        "dataframe_records": ("application/json", {"dataframe_records": rows}),
        "dataframe_split": (
            "application/json",
            {
                "dataframe_split": {
                    "columns": columns,
                    "data": [[r[c] for c in columns] for r in rows],
                }
            },
        ),
        "instances": ("application/json", {"instances": rows}),
        "inputs": ("application/json", {"inputs": {c: [r[c] for r in rows] for c in columns}}),
        "csv": ("text/csv", pd.DataFrame(rows).to_csv(index=False)),
    }


def post_payload(client: Any, url: str, kind: str, body: Any) -> Any:
    if kind == "text/csv":
        return client.post(url, content=body, headers={"content-type": kind})
    return client.post(url, json=body)


def v2_datatype(values: list[Any]) -> str:
    """The V2 datatype of a column's JSON values: BOOL, FP64 for numbers, else BYTES."""
    sent = [v for v in values if v is not None]
    if sent and all(isinstance(v, bool) for v in sent):
        return "BOOL"
    if sent and all(isinstance(v, int | float) and not isinstance(v, bool) for v in sent):
        return "FP64"
    return "BYTES"


def v2_body(rows: list[dict[str, Any]], datatypes: dict[str, str] | None = None) -> dict[str, Any]:
    """``rows`` as a V2 inference request: one tensor per field.

    Each tensor's datatype is ``datatypes[name]`` (e.g. ``GET /v2/models/{name}``'s inputs),
    else read from its values (:func:`v2_datatype`).
    """
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    return {
        "inputs": [
            {
                "name": k,
                "shape": [len(rows)],
                "datatype": (datatypes or {}).get(k) or v2_datatype(values),
                "data": values,
            }
            for k, values in columns.items()
        ]
    }


def log_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` prediction-log records with a request id and one number."""
    return [{"request_id": f"r{i}", "x": float(i)} for i in range(start, start + n)]


def wait_for(predicate: Any, seconds: float = 5.0) -> Any:
    """Poll ``predicate`` until it is true or ``seconds`` pass; its last value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


@contextlib.contextmanager
def quiet_client(params: Any) -> Iterator[Any]:
    """A TestClient of the app without a prediction log; server errors answered, not raised."""
    from fastapi.testclient import TestClient

    from server.config import Settings
    from server.main import create_app

    app = create_app(Settings(prediction_log=False), params)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


RESETS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def client_loop(base: str, row: dict, until: float) -> dict[str, int]:
    """Post ``row`` over one keep-alive connection until refused; count what each request got."""
    seen = {"answered": 0, "refused": 0, "reset": 0}
    with httpx.Client(base_url=base, timeout=30) as client:
        while time.monotonic() < until:
            try:
                answer = client.post("/predict", json=row)
            except httpx.ConnectError:  # the server stopped listening: nothing was sent
                seen["refused"] += 1
                return seen
            except RESETS:  # the request was sent on an accepted connection, and lost
                seen["reset"] += 1
                return seen
            assert answer.status_code == 200, answer.text
            seen["answered"] += 1
    return seen
