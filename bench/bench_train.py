"""Training time: the whole default pipeline, the CI preset's train stage, fit time per family.

    .venv/bin/python bench/bench_train.py [--repeats 3]

1. `run_all.py` on the default params (20,000 generated rows, every stage), once, in a fresh
   folder: wall time and each stage's duration.
2. The CI preset's train stage (`run_all.py --params params/ci.yaml --only train`), `--repeats`
   times after one ingest: median wall time.
3. Per family of the default run (from its MLflow child runs): mean fit time per CV fold of the
   best configuration, whole search time, refit time and prediction time per 1,000 rows.

    .venv/bin/python bench/bench_train.py --rows 100000

instead ingests that many generated rows and times the train stage alone with the default
families: its wall time, and per family the search time, the rows searched and what the time
budget (train.family_time_budget) switched.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, median, save, time_command


def dirs(root: Path) -> list[str]:
    pairs = {
        "project.data_dir": "data",
        "project.reports_dir": "reports",
        "project.logs_dir": "logs",
        "mlflow.store_dir": "mlruns",
    }
    return [a for key, sub in pairs.items() for a in ("-p", f"{key}={root / sub}")]


def family_times(root: Path) -> list[dict[str, float | str]]:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("churn")
    runs = client.search_runs([experiment.experiment_id], "tags.family != ''")
    rows = []
    for run in runs:
        m = run.data.metrics
        rows.append(
            {
                "family": run.data.tags["family"],
                "fit_s_per_fold": m["fit_seconds_mean"],
                "search_s": m["search_seconds"],
                "refit_s": m["refit_seconds"],
                "predict_ms_per_1k": m["predict_ms_per_1k"],
                "val_roc_auc": m["val_roc_auc"],
                "note": run.data.tags.get("note", ""),
                "search_rows": run.data.params.get("search_rows", ""),
            }
        )
    return sorted(rows, key=lambda r: str(r["family"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=0, help="time the train stage on N rows")
    args = parser.parse_args()
    run_all = [sys.executable, str(ROOT / "run_all.py")]
    if args.rows:
        train_at_scale(run_all, args.rows)
        return
    with tempfile.TemporaryDirectory() as tmp:
        full_root = Path(tmp) / "full"
        t0 = time.perf_counter()
        time_command([*run_all, *dirs(full_root)])
        full_s = time.perf_counter() - t0
        stages = json.loads((full_root / "reports" / "status.json").read_text())["stages"]
        families = family_times(full_root)
        ci_root = Path(tmp) / "ci"
        time_command([*run_all, "--params", "params/ci.yaml", "--only", "ingest", *dirs(ci_root)])
        ci = [
            time_command(
                [*run_all, "--params", "params/ci.yaml", "--only", "train", *dirs(ci_root)]
            )
            for _ in range(args.repeats)
        ]
    payload = {
        "full_run_s": full_s,
        "stages": stages,
        "ci_train_runs_s": ci,
        "ci_train_median_s": median(ci),
        "families": families,
    }
    save("train", payload)
    print("| run | wall s |\n|---|---|")
    print(f"| default `run_all.py` (all stages, fresh folder) | {full_s:.1f} |")
    for name, info in stages.items():
        print(f"| &nbsp; stage {name} | {info['duration']} |")
    print(f"| CI preset `--only train` (median of {args.repeats}) | {median(ci):.1f} |")
    print(
        "\n| family | fit s per fold | search s | refit s | predict ms / 1k rows | val ROC AUC | note |\n|---|---|---|---|---|---|---|"
    )
    for f in families:
        print(
            f"| {f['family']} | {f['fit_s_per_fold']:.2f} | {f['search_s']:.1f} | {f['refit_s']:.2f} | {f['predict_ms_per_1k']:.1f} | {f['val_roc_auc']:.4f} | {f['note']} |"
        )


def train_at_scale(run_all: list[str], rows: int) -> None:
    """Ingest ``rows`` generated rows, then time the train stage alone; print it per family."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / f"rows{rows}"
        size = ["-p", f"generator.rows={rows}"]
        time_command([*run_all, "--only", "ingest", *size, *dirs(root)])
        train_s = time_command([*run_all, "--only", "train", *size, *dirs(root)])
        families = family_times(root)
    save(f"train_{rows}", {"rows": rows, "train_s": train_s, "families": families})
    print(f"train stage on {rows:,} generated rows: {train_s:.1f} s wall")
    print("\n| family | search s | rows searched | val ROC AUC | note |\n|---|---|---|---|---|")
    for f in families:
        print(
            f"| {f['family']} | {f['search_s']:.1f} | {f['search_rows']} | "
            f"{f['val_roc_auc']:.4f} | {f['note']} |"
        )


if __name__ == "__main__":
    main()
