"""Ingest speed and memory: Quire's validated ingest vs a bare pandas read_csv(pyarrow) + to_parquet.

    .venv/bin/python bench/bench_ingest.py [--rows 1000000] [--repeats 3]

Both run on the same 1-million-row, 20-column CSV written by the churn generator, alternately,
each in a fresh process. Reported: median wall time of each, the ratio, Quire's peak memory
(growth of resident memory over the process after imports) and the loaded frame's size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import median, save
from bench.fresh import run_fresh

BASELINE_SETUP = "import pandas as pd, pyarrow"
BASELINE = """
frame = pd.read_csv({csv!r}, engine="pyarrow")
frame.to_parquet({out!r}, index=False)
extra = {{"frame_bytes": int(frame.memory_usage(deep=True).sum()), "rows": len(frame), "columns": frame.shape[1]}}
"""
QUIRE_SETUP = """
from lib.core.params import load_params
from lib.data.ingest import run_ingest
params = load_params(overrides={overrides!r})
"""
QUIRE = """
result = run_ingest(params)
extra = {"rows": result.manifest.rows}
"""


def make_csv(rows: int, folder: Path) -> Path:
    from lib.core.param_sections import GeneratorParams
    from lib.data.generator import generate

    return generate(GeneratorParams(rows=rows, format="csv"), 42, folder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv = make_csv(args.rows, work / "raw")
        overrides = [
            f"data.source={csv}",
            "data.target=churned",
            f"project.data_dir={work / 'data'}",
            "project.name=bench",
            "ingest.schema_mode=infer",
        ]
        base_runs, quire_runs = [], []
        for _ in range(args.repeats):
            base_runs.append(
                run_fresh(
                    BASELINE_SETUP, BASELINE.format(csv=str(csv), out=str(work / "b.parquet"))
                )
            )
            quire_runs.append(run_fresh(QUIRE_SETUP.format(overrides=overrides), QUIRE))
        frame_bytes = base_runs[0]["frame_bytes"]
        base_s = median([r["seconds"] for r in base_runs])
        quire_s = median([r["seconds"] for r in quire_runs])
        growth = median([(r["peak_kib"] - r["peak_before_kib"]) * 1024 for r in quire_runs])
        base_growth = median([(r["peak_kib"] - r["peak_before_kib"]) * 1024 for r in base_runs])
        payload = {
            "rows": args.rows,
            "columns": base_runs[0]["columns"],
            "csv_mib": csv.stat().st_size / 2**20,
            "frame_mib": frame_bytes / 2**20,
            "baseline_median_s": base_s,
            "quire_median_s": quire_s,
            "time_ratio": quire_s / base_s,
            "quire_peak_growth_mib": growth / 2**20,
            "baseline_peak_growth_mib": base_growth / 2**20,
            "memory_ratio_to_frame": growth / frame_bytes,
            "runs": {"baseline": base_runs, "quire": quire_runs},
        }
    save("ingest", payload)
    print(
        "| rows | columns | CSV MiB | frame MiB | pandas+to_parquet s | Quire ingest s | time ratio | Quire peak MiB | peak / frame |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.rows:,} | {payload['columns']} | {payload['csv_mib']:.0f} | {payload['frame_mib']:.0f} | "
        f"{base_s:.2f} | {quire_s:.2f} | {payload['time_ratio']:.2f}x | "
        f"{payload['quire_peak_growth_mib']:.0f} | {payload['memory_ratio_to_frame']:.2f}x |"
    )


if __name__ == "__main__":
    main()
