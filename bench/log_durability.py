"""What the prediction log's durability costs: the server with its log off, then in each mode.

    .venv/bin/python bench/log_durability.py [--seconds 3] [--repeats 3] [--modes off memory interval fsync]

Needs `wrk` (Debian package). Trains a small HistGradientBoosting champion on generated churn
data in a temporary store, then starts `python -m server` (one worker, OMP_NUM_THREADS=1,
127.0.0.1) once per mode (log off, `memory`, `interval`, `fsync`), in alternating rounds, and drives each with the same `wrk` runs:
single rows on /predict and 100-row batches on /predict/batch, both at concurrency 16. Prints
the markdown table of docs/benchmarks.md (medians of the rounds) and saves the runs to
bench/results/log_durability.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_server import free_port, rows, stop, wrk
from bench.common import ROOT, save

MODES = {  # name: server settings
    "off": {"QUIRE_SERVER_PREDICTION_LOG": "false"},
    "memory": {"QUIRE_SERVER_LOG_DURABILITY": "memory"},
    "interval": {"QUIRE_SERVER_LOG_DURABILITY": "interval"},
    "fsync": {"QUIRE_SERVER_LOG_DURABILITY": "fsync"},
}
LOADS = {"single_c16": ("/predict", "one"), "batch100_c16": ("/predict/batch", "batch")}


def prepare(root: Path) -> dict[str, str]:
    """Generate, ingest, train and promote a small HistGradientBoosting champion in ``root``."""
    from lib.core.params import load_params
    from lib.data.ingest import run_ingest
    from lib.model.evaluate import run_evaluation
    from lib.model.train import run_training

    params = load_params(
        overrides=[
            f"project.data_dir={root / 'data'}",
            f"project.reports_dir={root / 'reports'}",
            f"project.logs_dir={root / 'logs'}",
            f"mlflow.store_dir={root / 'mlruns'}",
            "generator.rows=3000",
            "generator.production.rows=0",
            "train.cv_folds=3",
            "train.families=[hist_gradient_boosting]",
            "train.grids={hist_gradient_boosting: {max_leaf_nodes: [15]}}",
            "train.learning_curve=false",
            "evaluate.bootstrap=0",
        ]
    )
    run_ingest(params)
    run_training(params)
    run_evaluation(params)
    return {
        "QUIRE__PROJECT__DATA_DIR": str(root / "data"),
        "QUIRE__MLFLOW__STORE_DIR": str(root / "mlruns"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
    }


def start(mode: str, port: int, store_env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`python -m server` with ``mode``'s log settings, once it answers /ping."""
    env = {**os.environ, **store_env, **MODES[mode], "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI")  # the server reads its store from params
    env.update(QUIRE_SERVER_PORT=str(port), QUIRE_SERVER_MAX_BODY_BYTES=str(50 * 2**20))
    proc = subprocess.Popen(
        [sys.executable, "-m", "server"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"the server ({mode}) did not become ready")


def measure(mode: str, store_env: dict[str, str], work: Path, seconds: int) -> dict[str, Any]:
    """Each load once against a fresh server in ``mode``."""
    port = free_port()
    proc = start(mode, port, store_env)
    try:
        base = f"http://127.0.0.1:{port}"
        wrk(base + "/predict", work / "one.json", 4, 1, work)  # warm-up
        return {
            load: wrk(base + route, work / f"{body}.json", 16, seconds, work)
            for load, (route, body) in LOADS.items()
        }
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3, help="length of each wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (medians)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store_env = prepare(work / "store")
        records, _, _ = rows(store_env, 100)
        (work / "one.json").write_text(json.dumps(records[0]))
        (work / "batch.json").write_text(json.dumps(records))
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in args.modes}
        for _ in range(args.repeats):
            for mode in args.modes:
                runs[mode].append(measure(mode, store_env, work, args.seconds))
    medians = {mode: median_result(r) for mode, r in runs.items()}
    save("log_durability", {"runs": runs, "median": medians})
    print(table(medians))
    print(f"medians of {args.repeats} alternating round(s) of {args.seconds} s per load")


def median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per load and measure, the median over the rounds; non-2xx answers summed."""
    return {
        load: {k: statistics.median(r[load][k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
        | {"non_2xx": sum(r[load]["non_2xx"] for r in runs)}
        for load in LOADS
    }


def table(medians: dict[str, Any]) -> str:
    """The markdown table for docs/benchmarks.md: a row per mode."""
    lines = [
        "| log | /predict c=16 req/s | p50 ms | p99 ms "
        "| /predict/batch (100 rows) c=16 req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, result in medians.items():
        one, batch = result["single_c16"], result["batch100_c16"]
        cells = [
            f"{one['rps']:.0f}", f"{one['p50_ms']:.1f}", f"{one['p99_ms']:.1f}",
            f"{batch['rps']:.0f}", f"{batch['p50_ms']:.1f}", f"{batch['p99_ms']:.1f}",
            str(one["non_2xx"] + batch["non_2xx"]),
        ]  # fmt: skip
        lines.append(f"| {mode} | {' | '.join(cells)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
