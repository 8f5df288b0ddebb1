"""The whole monitor stage on a large prediction log: memory vs the bounded-memory backends.

    python bench/bench_monitor_stage.py --sizes 1000000,10000000 [--dask] [--keep FOLDER]

Builds a project once (the generator's churn data, a logistic model, evaluated: the champion and
its reference), serves the generator's drifted production batch (100,000 rows) into the model's
prediction log with the server's own writer, and tiles that log to each size as 1,000,000-row
parts (later copies a day later each, so the log spans weeks). Then runs the monitor stage
(``lib.monitoring.monitor.run_monitor``: drift, per-window drift, multivariate drift, data
quality, CBPE, diagnosis, alerts; no Evidently report) on ``monitor.current: log`` in a fresh
process per backend, and reports wall seconds and the process's own peak resident memory
(``VmHWM``; with ``--dask`` the workers' peaks too). ``memory`` is run up to
``--memory-up-to`` rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import save
from bench.fresh import load_average, run_fresh

PART_ROWS = 1_000_000
BATCH_ROWS = 100_000


def overrides(root: Path) -> list[str]:
    from lib.core.params import folder_overrides

    return [
        *folder_overrides(root),
        "generator.rows=5000",
        f"generator.production.rows={BATCH_ROWS}",
        "train.families=[logistic]",
        "train.cv_folds=3",
        "train.learning_curve=false",
        "evaluate.bootstrap=0",
        "monitor.current=log",
        "monitor.evidently_report=false",
        "monitor.window=1W",
    ]


def project(root: Path) -> Path:
    """Ingest, train and evaluate once; serve the production batch into the log (one part)."""
    from lib.core.contracts import predlog
    from lib.core.layout import Layout
    from lib.core.params import load_params
    from lib.data.ingest import load_manifest, run_ingest
    from lib.model.evaluate import run_evaluation
    from lib.model.train import run_training
    from lib.monitoring.inputs import conform
    from lib.serving.loading import load_model
    from server.predlog import PredictionLog

    params = load_params(overrides=overrides(root))
    model_folder = root / "seed-log"
    if model_folder.exists():
        return model_folder
    run_ingest(params)
    run_training(params)
    run_evaluation(params)
    model = load_model(params, fast=False)
    batch = Path(load_manifest(params).production_batch or "")
    frame = conform(pd.read_parquet(batch), model.schema, batch)
    log = PredictionLog(model_folder, flush_rows=BATCH_ROWS * 2)
    log.start()
    for i, part in enumerate(np.array_split(frame, 100)):
        labels, proba = model.predict(part[model.schema.names()])
        log.append(
            predlog.log_columns(
                {n: part[n].to_numpy() for n in model.schema.names()},
                request_id=f"req{i}",
                model_version=model.version,
                prediction=labels,
                proba=proba,
                classes=model.schema.classes,
                now=pd.Timestamp("2026-11-01") + pd.Timedelta(minutes=14 * i),
            )
        )
    log.close()
    print(f"project ready; log of {len(frame):,} rows; folder {Layout.of(params).predictions}")
    return model_folder


def tile(seed_log: Path, folder: Path, total: int) -> None:
    """Write ``total`` rows as parts of the seed log repeated (each copy a day later)."""
    folder.mkdir(parents=True, exist_ok=True)
    seed = pq.read_table(sorted(seed_log.glob("part-*.parquet")))
    copies = 0
    for i, first in enumerate(range(0, total, PART_ROWS)):
        path = folder / f"part-{i:05d}-bench.parquet"
        rows = min(PART_ROWS, total - first)
        if path.exists():  # part i is the same whatever the total (tiled earlier)
            copies += -(-rows // len(seed))
            continue
        pieces = []
        while sum(len(p) for p in pieces) < rows:
            shifted = seed.column("time").to_pandas() + pd.Timedelta(days=copies)
            piece = seed.set_column(
                seed.schema.get_field_index("time"),
                "time",
                pa.array(shifted, type=seed.schema.field("time").type),
            )
            piece = piece.set_column(
                seed.schema.get_field_index("request_id"),
                "request_id",
                pa.array([f"c{copies}-{r}" for r in seed.column("request_id").to_pylist()]),
            )
            pieces.append(piece)
            copies += 1
        pq.write_table(pa.concat_tables(pieces).slice(0, rows), path)


SETUP = """
from pathlib import Path
from lib.core.params import load_params
from lib.monitoring.monitor import run_monitor
from bench.bench_monitor_stage import overrides
params = load_params(overrides=[*overrides(Path({root!r})), "monitor.backend={backend}",
                                "monitor.dask_workers=2"])
"""
BODY = """
result = run_monitor(params, webhook_url="")
extra = {"rows": result.current.rows, "sampled": len(result.current.frame),
         "drifted": result.drift.drifted, "windows": len(result.windows.diagnosis.windows),
         "alerts": len(result.alerting.alerts)}
"""
DASK_PEAKS = """
import dask.distributed as dd
_made = []
_Local = dd.LocalCluster
class _Kept(_Local):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        _made.append(self)
    def close(self, *a, **k):
        with dd.Client(self) as c:
            _peaks.extend(v / 1024 for v in c.run(_hwm_kib).values())
        return super().close(*a, **k)
_peaks = []
dd.LocalCluster = _Kept
"""


def measure(root: Path, backend: str) -> dict[str, object]:
    setup = SETUP.format(root=str(root), backend=backend)
    body = BODY
    if backend == "dask":
        setup += DASK_PEAKS
        body += 'extra["worker_peak_mib"] = _peaks\n'
    got = run_fresh(setup, body)
    return {**got, "peak_mib": got["peak_kib"] / 1024, "backend": backend}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--dask", action="store_true")
    parser.add_argument("--memory-up-to", type=int, default=10_000_000)
    parser.add_argument("--kinds", default="memory,stream,dask", help="backends to run")
    parser.add_argument("--keep", type=Path, help="folder to build the project in (and reuse)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        seed_log = project(base)
        from lib.core.layout import Layout
        from lib.core.params import load_params
        from lib.serving.loading import load_model

        params = load_params(overrides=overrides(base))
        name = str(load_model(params, fast=True).name)
        log_folder = Layout.of(params, model=name).predictions
        results = []
        for size in map(int, args.sizes.split(",")):
            parts = -(-size // PART_ROWS)
            for old in log_folder.glob("part-*.parquet"):  # part i is the same for every size
                if not old.name.endswith("-bench.parquet") or int(old.name[5:10]) >= parts:
                    old.unlink()
            tile(seed_log, log_folder, size)
            kinds = [k for k in args.kinds.split(",") if k != "dask" or args.dask]
            if size > args.memory_up_to and "memory" in kinds:
                kinds.remove("memory")
            for kind in kinds:
                got = measure(base, kind) | {"size": size, "load": load_average()}
                results.append(got)
                print(json.dumps(got, default=str), flush=True)
    save("monitor_stage", {"results": results})
    print("| rows | backend | seconds | peak MiB (process) | Dask worker peaks MiB | sampled |")
    print("|---|---|---|---|---|---|")
    for r in results:
        peaks = ", ".join(f"{p:.0f}" for p in r.get("worker_peak_mib", []))  # type: ignore[attr-defined]
        print(f"| {int(r['size']):,} | {r['backend']} | {r['seconds']:.1f} | "  # type: ignore[call-overload]
              f"{r['peak_mib']:.0f} | {peaks} | {r['sampled']:,} |")  # fmt: skip


if __name__ == "__main__":
    main()
