"""Drift of logs larger than memory: time and peak memory of the streaming check as rows grow.

    python bench/bench_stream.py --sizes 1000000,10000000 [--dask] [--keep FOLDER]

Writes the data once per size (20 features: 16 numeric, 4 categorical; the second half of the
rows shifted; a year of timestamps) as Parquet parts of 1,000,000 rows, then checks it in a fresh process with
``lib.monitoring.stream.stream_drift`` (weekly windows of a date column), reporting seconds,
seconds per million rows and the process's peak resident memory (VmHWM). ``--dask`` also runs
it on a 2-worker ``LocalCluster`` (one thread each) and reports each worker's peak.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import save

PART_ROWS = 1_000_000
NUMERIC, CATEGORICAL = 16, 4
START = pd.Timestamp("2026-01-01")
YEAR_S = 365 * 86_400  # every size spans one year: 53 weekly windows


def table(rows: int, first: int, total: int, seed: int) -> pa.Table:
    """Rows ``first``..``first+rows`` of the data: the second half drifts; a year of rows."""
    rng = np.random.default_rng(seed)
    shift = (np.arange(first, first + rows) >= total // 2).astype(float) * 0.3
    columns: dict[str, object] = {
        f"n{i}": rng.normal(shift * (i % 3), 1 + i / 10, rows) for i in range(NUMERIC)
    }
    for i in range(CATEGORICAL):
        codes = rng.integers(0, 5 + i, rows)
        columns[f"c{i}"] = pa.DictionaryArray.from_arrays(
            pa.array(codes.astype(np.int32)), pa.array([f"v{j}" for j in range(5 + i)])
        )
    seconds = np.arange(first, first + rows) * (YEAR_S / max(total, 1))
    columns["time"] = START + pd.to_timedelta(seconds, "s")
    return pa.table(columns)


def write(folder: Path, total: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, first in enumerate(range(0, total, PART_ROWS)):
        path = folder / f"part-{i:05d}.parquet"
        if not path.exists():
            # a row group of 1,000,000 rows: pyarrow's default, the hardest case for a reader
            pq.write_table(table(min(PART_ROWS, total - first), first, total, i), path)
        paths.append(path)
    return paths


def reference(folder: Path) -> Path:
    """The reference profile: 100,000 rows of the undrifted distribution."""
    from lib.data.drift_profile import build_profile

    path = folder / "reference.npz"
    if not path.exists():
        frame = table(100_000, 0, 10**9, 999).to_pandas()  # all in the undrifted half
        kinds = {c: ("categorical" if c.startswith("c") else "numeric") for c in frame.columns}
        kinds.pop("time")
        build_profile(frame, kinds).save(path)  # type: ignore[arg-type]
    return path


CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from lib.data.drift_profile import Profile
from lib.monitoring.stream import Windows, stream_drift

def peak_mib():
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024

paths = sorted(Path({data!r}).glob("part-*.parquet"))
profile = Profile.load(Path({ref!r}))
cluster = client = None
scheduler = None
if {dask!r}:
    from dask.distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    scheduler = cluster.scheduler_address
t0 = time.perf_counter()
result = stream_drift(paths, profile, windows=Windows(date_column="time", period="W"),
                      backend="dask" if {dask!r} else "stream", scheduler=scheduler)
seconds = time.perf_counter() - t0
workers = list(client.run(peak_mib).values()) if client else []
print("BENCH" + json.dumps({{"seconds": seconds, "peak_mib": peak_mib(),
      "worker_peak_mib": workers, "windows": len(result.windows), "rows": result.rows,
      "drifted_windows": sum(r.dataset_drift for r in result.windows.values())}}))
"""


# what a user would do otherwise: read the files into pandas and check them in memory (overall
# only: the per-week windows would add a check per week)
IN_MEMORY = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
import pandas as pd
from lib.data.drift import check_drift
from lib.data.drift_profile import Profile

def peak_mib():
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024

paths = sorted(Path({data!r}).glob("part-*.parquet"))
profile = Profile.load(Path({ref!r}))
t0 = time.perf_counter()
frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
report = check_drift(profile, frame)
seconds = time.perf_counter() - t0
print("BENCH" + json.dumps({{"seconds": seconds, "peak_mib": peak_mib(), "worker_peak_mib": [],
      "windows": 0, "rows": len(frame), "drifted_windows": 0}}))
"""


def measure(data: Path, ref: Path, dask: bool, code: str = CHILD) -> dict[str, object]:
    root = str(Path(__file__).resolve().parents[1])
    code = code.format(root=root, data=str(data), ref=str(ref), dask=dask)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(next(x for x in out.stdout.splitlines() if x.startswith("BENCH"))[5:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--dask", action="store_true")
    parser.add_argument("--keep", type=Path, help="folder to write the data to (and reuse)")
    parser.add_argument(
        "--in-memory-up-to", type=int, default=10_000_000,
        help="also time pandas + the in-memory check on sizes up to this many rows",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        ref = reference(base)
        results = []
        for size in map(int, args.sizes.split(",")):
            t0 = time.perf_counter()
            paths = write(base / f"rows-{size}", size)
            written = time.perf_counter() - t0
            kinds = ["stream", "dask"] if args.dask else ["stream"]
            if size <= args.in_memory_up_to:
                kinds.append("pandas in memory")
            for kind in kinds:
                code = IN_MEMORY if kind == "pandas in memory" else CHILD
                got = measure(paths[0].parent, ref, kind == "dask", code)
                got |= {"size": size, "backend": kind,
                        "write_s": written, "bytes": sum(p.stat().st_size for p in paths)}  # fmt: skip
                results.append(got)
                print(json.dumps(got), flush=True)
    save("stream", {"results": results})
    print(
        "| rows | backend | seconds | s per million rows | peak MiB (process) | worker peaks MiB |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        per = float(r["seconds"]) / (int(r["size"]) / 1e6)  # type: ignore[arg-type]
        print(f"| {int(r['size']):,} | {r['backend']} | {r['seconds']:.1f} | {per:.2f} | "
              f"{r['peak_mib']:.0f} | {r['worker_peak_mib']} |")  # fmt: skip


if __name__ == "__main__":
    main()
