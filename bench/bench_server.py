"""Quire's server vs `mlflow models serve --env-manager local` on the same champion model.

    .venv/bin/python bench/bench_server.py [--seconds 15]

Needs `wrk` (Debian package). Trains a HistGradientBoosting champion on the default churn data
(18 raw columns through the ColumnTransformer) in a temporary store, starts both servers with one
worker each and OMP_NUM_THREADS=1 on 127.0.0.1, and drives each with the same wrk runs, one server
at a time: single rows at concurrency 16 and 1, 1,000-row batches at concurrency 4. Also: time from
start to ready, resident memory after the runs, and a check that every benchmarked row's answer
equals the pipeline's own predict / predict_proba.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, save

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(root: Path) -> dict[str, str]:
    """Ingest, train a HistGradientBoosting model and make it champion, in ``root``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pairs = {
        "project.data_dir": "data",
        "project.reports_dir": "reports",
        "project.logs_dir": "logs",
        "mlflow.store_dir": "mlruns",
    }
    args = [a for k, v in pairs.items() for a in ("-p", f"{k}={root / v}")]
    args += [
        "-p",
        "train.families=[hist_gradient_boosting]",
        "-p",
        "train.learning_curve=false",
        "-p",
        "evaluate.bootstrap=0",
    ]
    subprocess.run(
        [sys.executable, str(ROOT / "run_all.py"), *args],
        check=True,
        capture_output=True,
        env=env,
        cwd=ROOT,
    )
    return {
        "QUIRE__PROJECT__DATA_DIR": str(root / "data"),
        "QUIRE__MLFLOW__STORE_DIR": str(root / "mlruns"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
    }


def start(kind: str, port: int, store_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], float]:
    bin_dir = str(Path(sys.executable).parent)  # mlflow runs `uvicorn` from PATH
    env = {**os.environ, **store_env, "OMP_NUM_THREADS": "1"}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    if kind == "quire":
        env.pop("MLFLOW_TRACKING_URI")  # Quire reads its store from params
        cmd = [sys.executable, "-m", "server"]
        env.update(
            QUIRE_SERVER_PORT=str(port),
            QUIRE_SERVER_PREDICTION_LOG="true",
            QUIRE_SERVER_MAX_BODY_BYTES=str(50 * 2**20),
        )
    else:
        cmd = [
            str(Path(bin_dir) / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/quire-churn@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{kind} server did not become ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def rss_mib(proc: subprocess.Popen[bytes]) -> float:
    parent = psutil.Process(proc.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 2**20


def wrk(url: str, body: Path, connections: int, seconds: int, work: Path) -> dict[str, float]:
    script = work / f"{body.stem}.lua"
    script.write_text(LUA.format(body=body))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: _ms(re.search(rf"^\s+{p}%\s+([\d.]+\w+)", out, re.M).group(1)) for p in ("50", "99")}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rate,
        "p50_ms": lat["50"],
        "p99_ms": lat["99"],
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def rows(store_env: dict[str, str], n: int) -> tuple[list[dict[str, Any]], Any]:
    """JSON-ready test rows and the champion pipeline."""
    import mlflow

    from lib.ingest import load_processed
    from lib.params import load_params

    params = load_params(overrides=[f"project.data_dir={store_env['QUIRE__PROJECT__DATA_DIR']}"])
    X, _ = load_processed(params).xy("test")
    frame = X.head(n).astype(object)
    frame["signup_date"] = X["signup_date"].head(n).dt.strftime("%Y-%m-%d")
    for c in ("is_senior", "has_partner", "paperless_billing", "auto_pay"):
        frame[c] = X[c].head(n).map({1.0: True, 0.0: False})
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    mlflow.set_tracking_uri(store_env["MLFLOW_TRACKING_URI"])
    return records, mlflow.sklearn.load_model("models:/quire-churn@champion")


def check_equal(
    port_q: int, port_m: int, records: list[dict[str, Any]], pipeline: Any
) -> dict[str, bool]:
    from lib.schema import Schema
    from lib.serving import records_to_frame

    schema = Schema.model_validate(httpx.get(f"http://127.0.0.1:{port_q}/model").json()["schema"])
    frame, _ = records_to_frame(records, schema)
    proba, labels = pipeline.predict_proba(frame), pipeline.predict(frame)
    q = httpx.post(f"http://127.0.0.1:{port_q}/predict/batch", json=records, timeout=60).json()[
        "predictions"
    ]
    got = np.array([[p["probabilities"]["0"], p["probabilities"]["1"]] for p in q])
    m = httpx.post(
        f"http://127.0.0.1:{port_m}/invocations", json={"dataframe_records": records}, timeout=60
    ).json()["predictions"]
    one = httpx.post(f"http://127.0.0.1:{port_q}/predict", json=records[0]).json()["predictions"][
        0
    ]["probabilities"]
    return {
        "quire_proba_equal": bool(np.array_equal(got, proba)),
        "quire_single_equal": [one["0"], one["1"]] == proba[0].tolist(),
        "mlflow_labels_equal": m == labels.tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store_env = prepare(work / "store")
        records, pipeline = rows(store_env, 1000)
        bodies = {
            "quire_one": records[0],
            "mlflow_one": {"dataframe_records": [records[0]]},
            "quire_batch": records,
            "mlflow_batch": {
                "dataframe_split": {
                    "columns": list(records[0]),
                    "data": [list(r.values()) for r in records],
                }
            },
        }
        for name, body in bodies.items():
            (work / f"{name}.json").write_text(json.dumps(body))
        results: dict[str, Any] = {}
        for kind, route_one, route_batch in (
            ("quire", "/predict", "/predict/batch"),
            ("mlflow", "/invocations", "/invocations"),
        ):
            port = free_port()
            proc, ready_s = start(kind, port, store_env)
            try:
                base = f"http://127.0.0.1:{port}"
                wrk(base + route_one, work / f"{kind}_one.json", 4, 3, work)  # warm-up
                results[kind] = {
                    "ready_s": ready_s,
                    "c16": wrk(base + route_one, work / f"{kind}_one.json", 16, args.seconds, work),
                    "c1": wrk(base + route_one, work / f"{kind}_one.json", 1, args.seconds, work),
                    "batch_c4": wrk(
                        base + route_batch, work / f"{kind}_batch.json", 4, args.seconds, work
                    ),
                    "rss_mib": rss_mib(proc),
                }
                if kind == "quire":
                    results["quire_port"], quire_proc = port, proc
                    continue
                results["equal"] = check_equal(results["quire_port"], port, records, pipeline)
            finally:
                if kind == "mlflow":
                    stop(proc)
                    stop(quire_proc)
    save("server", results)
    q, m = results["quire"], results["mlflow"]
    print("| measure | Quire | mlflow models serve | ratio |\n|---|---|---|---|")
    print(
        f"| single row, c=16: req/s | {q['c16']['rps']:.0f} | {m['c16']['rps']:.0f} | {q['c16']['rps'] / m['c16']['rps']:.2f}x |"
    )
    print(
        f"| single row, c=16: p99 ms | {q['c16']['p99_ms']:.1f} | {m['c16']['p99_ms']:.1f} | {q['c16']['p99_ms'] / m['c16']['p99_ms']:.2f}x |"
    )
    print(
        f"| single row, c=1: p50 ms | {q['c1']['p50_ms']:.2f} | {m['c1']['p50_ms']:.2f} | {q['c1']['p50_ms'] / m['c1']['p50_ms']:.2f}x |"
    )
    print(
        f"| 1,000-row batch, c=4: req/s | {q['batch_c4']['rps']:.1f} | {m['batch_c4']['rps']:.1f} | {q['batch_c4']['rps'] / m['batch_c4']['rps']:.2f}x |"
    )
    print(
        f"| start to ready s | {q['ready_s']:.1f} | {m['ready_s']:.1f} | {q['ready_s'] / m['ready_s']:.2f}x |"
    )
    print(
        f"| resident memory MiB | {q['rss_mib']:.0f} | {m['rss_mib']:.0f} | {q['rss_mib'] / m['rss_mib']:.2f}x |"
    )
    print(
        f"\nnon-2xx: quire {q['c16']['non_2xx']}, mlflow {m['c16']['non_2xx']}; equal: {results['equal']}"
    )


if __name__ == "__main__":
    main()
