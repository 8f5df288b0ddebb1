"""Shared helpers for the benchmarks: run a Python snippet in a fresh process, time it, take medians."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# The child prints one JSON line: its own measurements (peak RSS etc.).
_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
{setup}
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
{body}
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("BENCH" + json.dumps({{"seconds": seconds, "peak_kib": peak, "rss_before_kib": rss_before, **extra}}))
"""


def run_child(setup: str, body: str) -> dict[str, float]:
    """Run ``setup`` then time ``body`` in a fresh interpreter; ``body`` must set ``extra = {...}``."""
    code = _CHILD.format(root=str(ROOT), setup=setup, body=body)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH"))
    return json.loads(line[5:])


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
