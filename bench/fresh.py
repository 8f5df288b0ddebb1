"""Run a timed Python snippet in a fresh interpreter and measure that process's own peak memory.

A child's ``getrusage(RUSAGE_SELF).ru_maxrss`` is *not* its own peak: Linux carries the high-water
mark of the process image it replaced over ``execve``, so a child spawned from a benchmark that
holds 1.5 GB reports at least 1.5 GB (measured: 1,552 MiB for a child whose own peak was 11 MiB).
``VmHWM`` in ``/proc/self/status`` belongs to the new address space only, so the child reads that.
The interpreter is a parameter: NannyML runs in its own venv (``bench/.venv-nannyml``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NANNYML_PYTHON = ROOT / "bench" / ".venv-nannyml" / "bin" / "python"

_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})


def _hwm_kib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


{setup}
hwm_before = _hwm_kib()
t0, c0 = time.perf_counter(), time.process_time()
{body}
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
print("BENCH" + json.dumps({{"seconds": seconds, "cpu_seconds": cpu, "peak_kib": _hwm_kib(),
                             "peak_before_kib": hwm_before, **extra}}, default=str))
"""


def run_fresh(
    setup: str, body: str, python: Path | str = sys.executable, timeout: float = 3600
) -> dict[str, Any]:
    """Run ``setup`` then time ``body`` in a fresh ``python``; ``body`` must set ``extra = {...}``.

    Returns the child's ``seconds`` (wall, body only), ``cpu_seconds`` (its CPU time, which a
    shared machine's load inflates less), ``peak_kib`` (its own peak resident set, imports
    and setup included), ``peak_before_kib`` (the peak after imports and setup) and ``extra``.

    Raises
    ------
    RuntimeError
        With the end of the child's stderr, when the child fails.
    """
    code = _CHILD.format(root=str(ROOT), setup=setup, body=body)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, env=env, timeout=timeout
    )
    if out.returncode:
        raise RuntimeError(f"benchmark child ({python}) failed:\n{out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH"))
    result: dict[str, Any] = json.loads(line[5:])
    return result


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
