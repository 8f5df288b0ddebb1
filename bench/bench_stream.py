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
from bench.fresh import run_fresh

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


SETUP = """
from pathlib import Path
from lib.data.drift_profile import Profile
from lib.monitoring.stream import Windows, stream_drift
paths = sorted(Path({data!r}).glob("part-*.parquet"))
profile = Profile.load(Path({ref!r}))
client = None
scheduler = None
if {dask!r}:
    from dask.distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    scheduler = cluster.scheduler_address
"""
STREAM = """
result = stream_drift(paths, profile, windows=Windows(date_column="time", period="W"),
                      backend="dask" if {dask!r} else "stream", scheduler=scheduler)
workers = list(client.run(_hwm_kib).values()) if client else []
extra = {{"worker_peak_mib": [w / 1024 for w in workers], "windows": len(result.windows),
          "rows": result.rows,
          "drifted_windows": sum(r.dataset_drift for r in result.windows.values())}}
"""
# what a user would do otherwise: read the files into pandas and check them in memory (overall
# only: the per-week windows would add a check per week)
IN_MEMORY = """
import pandas as pd
from lib.data.drift import check_drift
frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
report = check_drift(profile, frame)
extra = {"worker_peak_mib": [], "windows": 0, "rows": len(frame), "drifted_windows": 0}
"""


def measure(data: Path, ref: Path, kind: str) -> dict[str, object]:
    """One run in a fresh process: seconds, and its own peak (and the Dask workers')."""
    dask = kind == "dask"
    setup = SETUP.format(data=str(data), ref=str(ref), dask=dask)
    body = IN_MEMORY if kind == "pandas in memory" else STREAM.format(dask=dask)
    got = run_fresh(setup, body)
    return {**got, "peak_mib": got["peak_kib"] / 1024}


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
                got = measure(paths[0].parent, ref, kind)
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
