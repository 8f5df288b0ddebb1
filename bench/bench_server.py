"""Quire's server vs `mlflow models serve --env-manager local` on the same champion model.

    .venv/bin/python bench/bench_server.py [--seconds 15] [--repeats 3]

Needs `wrk` (Debian package). Trains a HistGradientBoosting champion on the default churn data
(18 raw columns through the ColumnTransformer) in a temporary store, starts each server with one
worker and OMP_NUM_THREADS=1 on 127.0.0.1 - Quire, Quire with its fast path off (the pipeline's
own predict), mlflow - and drives each with the same wrk runs, one server at a time: single rows
at concurrency 16 and 1, 1,000-row batches at concurrency 4. Quire is measured on its own routes
(`/predict`, `/predict/batch`) and on MLflow's (`/invocations`, with the very bodies sent to
mlflow). Also: time from start to ready, resident memory after the runs, and a check that every
benchmarked row's answer equals the pipeline's own predict / predict_proba. Quire logs every
prediction during the runs, as in production.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
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
    if kind.startswith("quire"):
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
            env.pop("WORKERS", "1"),
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
            base = f"http://127.0.0.1:{port}"
            if httpx.get(f"{base}/ping", timeout=1).status_code == 200 and all_ready(kind, base):
                return proc, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{kind} server did not become ready")


def all_ready(kind: str, base: str) -> bool:
    """Whether every worker of a multi-worker Quire serves (one answering is not enough)."""
    workers = int(KINDS[kind][2].get("QUIRE_SERVER_WORKERS", "1"))
    if workers == 1:
        return True
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return len(re.findall(r"^quire_model_info\{.*\} 1\.0$", text, re.M)) == workers


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


def rows(store_env: dict[str, str], n: int) -> tuple[list[dict[str, Any]], Any, Any]:
    """JSON-ready test rows, the champion pipeline and the training schema."""
    import mlflow

    from lib.core.params import load_params
    from lib.data.ingest import load_processed

    params = load_params(overrides=[f"project.data_dir={store_env['QUIRE__PROJECT__DATA_DIR']}"])
    data = load_processed(params)
    X, _ = data.xy("test")
    frame = X.head(n).astype(object)
    frame["signup_date"] = X["signup_date"].head(n).dt.strftime("%Y-%m-%d")
    for c in ("is_senior", "has_partner", "paperless_billing", "auto_pay"):
        frame[c] = X[c].head(n).map({1.0: True, 0.0: False})
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    mlflow.set_tracking_uri(store_env["MLFLOW_TRACKING_URI"])
    return records, mlflow.sklearn.load_model("models:/quire-churn@champion"), data.schema


def check(kind: str, port: int, records: list[dict[str, Any]], pipeline: Any, schema: Any) -> bool:
    """Every benchmarked row's answer equals the pipeline's own predict / predict_proba."""
    from lib.serving.contract import records_to_frame

    frame, _ = records_to_frame(records, schema)
    base = f"http://127.0.0.1:{port}"
    if kind.startswith("mlflow"):
        answer = httpx.post(
            f"{base}/invocations", json={"dataframe_records": records}, timeout=60
        ).json()["predictions"]
        return bool(answer == pipeline.predict(frame).tolist())
    proba = pipeline.predict_proba(frame).tolist()
    if kind.startswith("quire_invocations"):  # MLflow's body; the probabilities as Quire adds them
        answers = [
            httpx.post(f"{base}/invocations", json=body, timeout=60).json()["probabilities"]
            for body in [{"dataframe_records": records, "params": {"probabilities": True}}]
            + [{"dataframe_records": [r], "params": {"probabilities": True}} for r in records[:200]]
        ]
        got = [[p["0"], p["1"]] for answer in answers for p in answer]
        return got == proba + proba[:200]
    batch = httpx.post(f"{base}/predict/batch", json=records, timeout=60).json()["predictions"]
    singles = [
        httpx.post(f"{base}/predict", json=r).json()["predictions"][0] for r in records[:200]
    ]
    got = [[p["probabilities"]["0"], p["probabilities"]["1"]] for p in batch + singles]
    return got == proba + proba[:200]


KINDS = {  # name: (single-row route, batch route, extra environment)
    "quire": ("/predict", "/predict/batch", {}),
    "quire_pipeline": ("/predict", "/predict/batch", {"QUIRE_SERVER_FAST_PATH": "false"}),
    "quire_invocations": ("/invocations", "/invocations", {}),  # like with like: MLflow's route
    # live drift's cost: the same server with monitor.live off
    "quire_live_off": ("/predict", "/predict/batch", {"QUIRE__MONITOR__LIVE__ENABLED": "false"}),
    "mlflow": ("/invocations", "/invocations", {}),
    # both cores: two server processes each (QUIRE_SERVER_WORKERS; mlflow's own --workers)
    "quire_2w": ("/predict", "/predict/batch", {"QUIRE_SERVER_WORKERS": "2"}),
    "quire_invocations_2w": ("/invocations", "/invocations", {"QUIRE_SERVER_WORKERS": "2"}),
    "mlflow_2w": ("/invocations", "/invocations", {"WORKERS": "2"}),
}
NAMES = {
    "quire": "Quire `/predict`",
    "quire_pipeline": "fast path off",
    "quire_invocations": "Quire `/invocations`",
    "quire_live_off": "Quire `/predict`, live drift off",
    "mlflow": "mlflow models serve",
    "quire_2w": "Quire `/predict`, 2 workers",
    "quire_invocations_2w": "Quire `/invocations`, 2 workers",
    "mlflow_2w": "mlflow models serve, 2 workers",
}


def measure(kind: str, store_env: dict[str, str], work: Path, seconds: int) -> dict[str, Any]:
    route_one, route_batch, extra = KINDS[kind]
    body = "mlflow" if route_one == "/invocations" else "quire"
    port = free_port()
    proc, ready_s = start(kind, port, {**store_env, **extra})
    try:
        base = f"http://127.0.0.1:{port}"
        wrk(base + route_one, work / f"{body}_one.json", 4, 3, work)  # warm-up
        result: dict[str, Any] = {
            "ready_s": ready_s,
            "c16": wrk(base + route_one, work / f"{body}_one.json", 16, seconds, work),
            "c1": wrk(base + route_one, work / f"{body}_one.json", 1, seconds, work),
            "batch_c4": wrk(base + route_batch, work / f"{body}_batch.json", 4, seconds, work),
            "rss_mib": rss_mib(proc),
        }
        if kind.startswith("quire"):  # is live drift on? (rows in its window after the runs)
            found = re.search(
                r"^quire_live_window_rows (\S+)", httpx.get(base + "/metrics").text, re.M
            )
            result["live_window_rows"] = float(found.group(1)) if found else None
        result["port"] = port
        return result | {"proc": proc}
    except BaseException:
        stop(proc)
        raise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (medians)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="servers to run, comma-separated")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"--kinds: unknown {unknown}; choose from {list(KINDS)}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store_env = prepare(work / "store")
        records, pipeline, schema = rows(store_env, 1000)
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
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        for _ in range(args.repeats):  # rounds of one server at a time, same loopback load
            for kind in kinds:
                result = measure(kind, store_env, work, args.seconds)
                proc = result.pop("proc")
                try:
                    result["equal"] = check(kind, result.pop("port"), records, pipeline, schema)
                finally:
                    stop(proc)
                runs[kind].append(result)
    results = {kind: median_result(r) for kind, r in runs.items()}
    save("server", {"runs": runs, "median": results})
    print(table(results))
    print(f"medians of {args.repeats} alternating round(s) of {args.seconds} s per load")


def median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per measure, the median over runs; errors summed, equality required of every run."""
    out: dict[str, Any] = {
        "ready_s": statistics.median(r["ready_s"] for r in runs),
        "rss_mib": statistics.median(r["rss_mib"] for r in runs),
        "equal": all(r["equal"] for r in runs),
        "live_window_rows": runs[-1].get("live_window_rows"),
    }
    for load in ("c16", "c1", "batch_c4"):
        out[load] = {
            key: statistics.median(r[load][key] for r in runs)
            for key in ("rps", "p50_ms", "p99_ms")
        } | {"non_2xx": sum(r[load]["non_2xx"] for r in runs)}
    return out


def table(results: dict[str, Any]) -> str:
    """The markdown table for docs/benchmarks.md: every kind run, and the ratios it allows."""
    measures = [
        ("single row, c=16: req/s", lambda r: r["c16"]["rps"], "{:.0f}"),
        ("single row, c=16: p99 ms", lambda r: r["c16"]["p99_ms"], "{:.1f}"),
        ("single row, c=1: p50 ms", lambda r: r["c1"]["p50_ms"], "{:.2f}"),
        ("1,000-row batch, c=4: req/s", lambda r: r["batch_c4"]["rps"], "{:.1f}"),
        ("start to ready s", lambda r: r["ready_s"], "{:.1f}"),
        ("resident memory MiB", lambda r: r["rss_mib"], "{:.0f}"),
    ]
    ratios = [  # (title, numerator, denominator)
        ("Quire / mlflow", "quire", "mlflow"),
        ("Quire / mlflow, same route and body", "quire_invocations", "mlflow"),
        ("live drift on / off", "quire", "quire_live_off"),
        ("Quire 2 workers / 1", "quire_2w", "quire"),
        ("Quire `/invocations` 2 workers / mlflow 2 workers", "quire_invocations_2w", "mlflow_2w"),
    ]
    ratios = [r for r in ratios if r[1] in results and r[2] in results]
    kinds = [k for k in KINDS if k in results]
    head = [NAMES[k] for k in kinds] + [title for title, _, _ in ratios]
    lines = [f"| measure | {' | '.join(head)} |", "|---" * (len(head) + 1) + "|"]
    for name, get, fmt in measures:
        cells = [fmt.format(get(results[k])) for k in kinds]
        cells += [f"{get(results[a]) / get(results[b]):.2f}x" for _, a, b in ratios]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    errors = {k: r["c16"]["non_2xx"] + r["c1"]["non_2xx"] + r["batch_c4"]["non_2xx"]
              for k, r in results.items()}  # fmt: skip
    equal = {k: r["equal"] for k, r in results.items()}
    live = {k: r["live_window_rows"] for k, r in results.items() if k.startswith("quire")}
    lines.append(f"\nnon-2xx answers: {errors}; answers equal the pipeline's own: {equal}")
    lines.append(f"live drift window rows after the runs: {live}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
