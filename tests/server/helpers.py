"""Shared by the server tests: free ports, waiting for a process to serve, MLflow payloads."""

from __future__ import annotations

import socket
import subprocess
import time
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
