"""What a second thread costs the monitor's column jobs, by what that thread does.

    .venv/bin/python bench/bench_neighbour.py [--rounds 3] [--neighbours none sort ...]

The monitor bench's case (``bench/bench_monitor.py``: 500,000 reference rows, 1,000,000 current
ones, 23 checked columns, windows of 50,000 rows) is written once; each round then runs, in a
fresh process per neighbour, the 23 column jobs of :func:`lib.monitoring.window_checks
.run_window_checks` (drift and quality, a column at a time) on one thread while a second thread
loops on one of:

- ``none``: nothing (the column jobs alone);
- ``sort``: NumPy sorts of 2,000,000 floats (no GIL held, nothing allocated in the loop);
- ``bincount``: ``np.bincount`` and ``np.cumsum`` of 50,000 values, as the binned distance does;
- ``memory``: 16 MB allocated, filled, freed and given back (``lib.core.heap.give_back``);
- ``python``: a pure Python loop (holds the GIL; the column jobs then take minutes).

Printed per neighbour: the column jobs' wall time and their own thread's CPU time, medians over
the rounds. A busy core beside them costs nothing (``sort``); the GIL and memory handed back
cost much (docs/benchmarks.md, "What the two threads cost").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_monitor import make_case
from bench.common import save
from bench.fresh import run_fresh

NEIGHBOURS = ("none", "sort", "bincount", "memory", "python")

SETUP = """
import json, resource, threading
from pathlib import Path
import numpy as np
from lib.core import frames
from lib.core.heap import give_back
from lib.core.param_sections import MonitorParams
from lib.monitoring import window_checks
from lib.monitoring.window_drift import DriftRun
from lib.monitoring.windows import parse_spec, reference_windows, split

folder = Path({folder!r})
case = json.loads((folder / "case.json").read_text())
ref = frames.ParquetColumns(folder / "reference.parquet")
cur = frames.ParquetColumns(folder / "analysis.parquet")
kinds = {{c: "numeric" for c in case["numeric"]}} | {{c: "categorical" for c in case["categorical"]}}
spec = parse_spec(f"{{case['chunk']['size']}} rows")
cur_windows = split(len(cur), spec, None)
ref_windows = reference_windows(len(ref), spec, cur_windows, None)
drift = DriftRun(ref_windows, cur_windows, MonitorParams(methods={{}}, threads=1))
windows = {{"reference": ref_windows, "current": cur_windows}}
columns = window_checks._Columns(ref, cur, kinds, drift, windows, 3.0, {{}})
names = list(dict.fromkeys([*columns.drift, *columns.quality]))
stop = False
rng = np.random.default_rng(0)
big, small = rng.random(2_000_000), rng.random(50_000)


def sort():
    while not stop:
        np.sort(big)


def bincount():
    while not stop:
        np.bincount((small * 1000).astype(np.intp), minlength=1000)
        np.cumsum(small)


def memory():
    while not stop:
        block = np.empty(2_000_000)
        block.fill(1.0)
        del block
        give_back()


def python():
    while not stop:
        sum(range(10_000))


loops = {{"sort": sort, "bincount": bincount, "memory": memory, "python": python}}
neighbour = {neighbour!r}
other = None if neighbour == "none" else threading.Thread(target=loops[neighbour])
"""
BODY = """
if other is not None:
    other.start()
before = resource.getrusage(resource.RUSAGE_THREAD)
for name in names:
    columns.one(name)
after = resource.getrusage(resource.RUSAGE_THREAD)
stop = True
if other is not None:
    other.join()
own_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
extra = {"jobs_cpu_seconds": own_cpu, "columns": len(names)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--neighbours", nargs="+", choices=NEIGHBOURS, default=NEIGHBOURS[:4])
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in args.neighbours}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "case"
        make_case(folder, 500_000, 1_000_000, 20)
        for _ in range(args.rounds):  # the neighbours alternate within each round
            for neighbour in args.neighbours:
                setup = SETUP.format(folder=str(folder), neighbour=neighbour)
                result = run_fresh(setup, BODY)
                runs[neighbour].append(result)
                print(
                    f"  {neighbour}: {result['seconds']:.2f} s, "
                    f"jobs' CPU {result['jobs_cpu_seconds']:.2f} s",
                    flush=True,
                )
    summary = {
        n: {
            "seconds": statistics.median(r["seconds"] for r in rs),
            "jobs_cpu_seconds": statistics.median(r["jobs_cpu_seconds"] for r in rs),
            "runs": rs,
        }
        for n, rs in runs.items()
    }
    save("neighbour", summary)
    print("| the other thread | column jobs' wall s (median) | their CPU s (median) |")
    print("|---|---|---|")
    for n, s in summary.items():
        print(f"| {n} | {s['seconds']:.2f} | {s['jobs_cpu_seconds']:.2f} |")


if __name__ == "__main__":
    main()
