"""Shared helpers for the benchmarks: time a command, take medians, save results.

A timed snippet in a fresh process, with its own peak memory: :mod:`bench.fresh`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def time_command(cmd: list[str]) -> float:
    """Wall time of a whole command (fails loudly if it fails)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def median(values: list[float]) -> float:
    return statistics.median(values)


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
