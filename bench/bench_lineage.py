"""GET /lineage's lookup and POST /feedback's check of request ids, on a large prediction log.

    .venv/bin/python bench/bench_lineage.py [--requests 1000000] [--parts 300] [--lookups 2000]

Writes a prediction log of ``--requests`` one-row requests (uuid hex request ids, 8 features, the
log's own columns) in ``--parts`` part files in a temporary folder, then, in a fresh process
(cold: no index yet), builds the log's index (``lib.data.feedback.LogIndex``: the request_id
column of every part only), and times ``--lookups`` lookups of logged requests
(``lib.loop.lineage.find_rows``: the index names the part, the part is read filtered), lookups
of unknown ids, one check of 1,000 request ids as /feedback makes it, an incremental refresh
after one new part, and, for comparison, a few lookups the way they were made before the index
(``predlog.read_log`` filtered by request id over every part).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import save

FEATURES = [f"x{i}" for i in range(8)]


def request_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return ``n`` request ids shaped as the server's (32 hex digits)."""
    raw = rng.integers(0, 2**63, size=(n, 2), dtype=np.int64)
    return np.array([f"{a:016x}{b:016x}" for a, b in raw.tolist()], dtype=object)


def write_log(folder: Path, requests: int, parts: int, seed: int = 0) -> list[str]:
    """Write the log; return every request id (in order)."""
    rng = np.random.default_rng(seed)
    ids = request_ids(rng, requests)
    start = np.datetime64("2026-01-01T00:00:00", "ns")
    for number, chunk in enumerate(np.array_split(np.arange(requests), parts)):
        n = len(chunk)
        columns = {name: rng.normal(size=n) for name in FEATURES}
        columns |= {
            "request_id": ids[chunk],
            "row": np.zeros(n, dtype=np.int64),
            "time": start + chunk.astype("timedelta64[s]"),
            "model_version": np.full(n, "3", dtype=object),
            "prediction": rng.integers(0, 2, n),
            "proba_1": rng.random(n),
        }
        table = pa.table({k: pa.array(v) for k, v in columns.items()})
        pq.write_table(table, folder / f"part-{number:06d}.parquet")
    return ids.tolist()


def _ms(seconds: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles([s * 1000 for s in seconds], n=100)
    return {"p50_ms": round(cuts[49], 3), "p99_ms": round(cuts[98], 3)}


def _rss_kib() -> int:
    """Return the process's resident memory now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() // 1024


def measure(folder: Path, lookups: int) -> dict[str, object]:
    """Cold index build, then lookup times (run in a fresh process)."""
    from lib.core.contracts import predlog
    from lib.data.feedback import LogIndex
    from lib.loop.lineage import find_rows

    rss_before, peak_before = _rss_kib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    index = LogIndex(folder)
    files = index.refresh()
    build = time.perf_counter() - t0
    rss_after, peak_after = _rss_kib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ids = json.loads((folder / "ids.json").read_text())
    rng = np.random.default_rng(1)
    found, unknown = [], []
    for k in rng.choice(len(ids), lookups, replace=False).tolist():
        t = time.perf_counter()
        rows = find_rows(folder, ids[k], index)
        found.append(time.perf_counter() - t)
        assert len(rows) == 1 and rows["request_id"].iat[0] == ids[k], ids[k]
    for k in range(lookups // 4):
        t = time.perf_counter()
        assert find_rows(folder, f"unknown-{k}", index).empty
        unknown.append(time.perf_counter() - t)
    batch = [ids[k] for k in rng.choice(len(ids), 1000, replace=False).tolist()]
    t = time.perf_counter()
    assert index.known("request_id", [*batch, "never"]) == set(batch)
    feedback_check = time.perf_counter() - t
    (folder / "part-999999.parquet").write_bytes((folder / "part-000000.parquet").read_bytes())
    t = time.perf_counter()
    assert index.refresh() == 1
    incremental = time.perf_counter() - t
    before = []
    for k in range(3):
        t = time.perf_counter()
        assert len(predlog.read_log(folder, request_id=ids[k * 1000])) >= 1
        before.append(time.perf_counter() - t)
    return {
        "part_files": files,
        "index_build_s": round(build, 2),
        "index_bytes": index.nbytes(),
        "rss_growth_mib": round((rss_after - rss_before) / 1024, 1),
        "peak_growth_mib": round((peak_after - peak_before) / 1024, 1),
        "found": _ms(found),
        "unknown": _ms(unknown),
        "feedback_1000_ids_ms": round(feedback_check * 1000, 2),
        "refresh_one_new_part_ms": round(incremental * 1000, 2),
        "before_index_median_s": round(statistics.median(before), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=300)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print("BENCH" + json.dumps(measure(args.measure, args.lookups)))
        return
    with tempfile.TemporaryDirectory(prefix="quire-lineage-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        ids = write_log(folder, args.requests, args.parts)
        (folder / "ids.json").write_text(json.dumps(ids))
        written = time.perf_counter() - t
        cmd = [sys.executable, __file__, "--measure", tmp, "--lookups", str(args.lookups)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH"))
        result = {"requests": args.requests, "write_s": round(written, 1), **json.loads(line[5:])}
    print(json.dumps(result, indent=2))
    save("lineage", result)


if __name__ == "__main__":
    main()
