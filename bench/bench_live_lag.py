"""How soon the live drift gauges see a change in traffic: rows and seconds after the switch.

    .venv/bin/python bench/bench_live_lag.py [--rate 200] [--repeats 3]

Trains a champion as bench_server.py does, starts Quire (one worker, the default
``monitor.live``: a window of 1,000 rows checked every 5 s; ``monitor.drift_share`` 0.15: the
generator's shift moves 3 of the 17 features at this size), fills the window with test-split rows at ``--rate`` single-row requests a
second, then switches to the generator's drifted production batch at the same rate and polls
``/metrics`` every 0.1 s. Reported per run: rows sent and seconds after the switch until the
first feature is flagged and until ``quire_dataset_drift`` reads 1, against the bound "one
window" (1,000 rows, plus one check interval).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_server import free_port, prepare, rows, start, stop
from bench.common import save

WINDOW = 1000


def drifted(store_env: dict[str, str], names: list[str]) -> list[dict[str, Any]]:
    from lib.core.params import load_params
    from lib.loop.replay import load_source, request_rows

    params = load_params(overrides=[f"project.data_dir={store_env['QUIRE__PROJECT__DATA_DIR']}"])
    frame, _ = load_source(params)
    return list(request_rows(frame, names))


def gauges(base: str) -> tuple[bool, bool]:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    feature = any(
        line.startswith("quire_drift_detected{")
        and 'role="feature"' in line
        and line.endswith(" 1.0")
        for line in text.splitlines()
    )
    return feature, "\nquire_dataset_drift 1.0" in text


def one_run(
    base: str, calm: list[dict[str, Any]], shifted: list[dict[str, Any]], rate: float
) -> dict[str, float]:
    sent = {"n": 0}
    stop_flag = threading.Event()
    rows_now: list[list[dict[str, Any]]] = [calm]

    def send() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            i = 0
            while not stop_flag.is_set():
                t0 = time.perf_counter()
                source = rows_now[0]
                client.post("/predict", json=source[i % len(source)])
                sent["n"] += 1
                i += 1
                time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t0)))

    sender = threading.Thread(target=send)
    sender.start()
    while sent["n"] < WINDOW * 1.5:  # the window full of calm rows, checked
        time.sleep(0.1)
    time.sleep(6)
    assert gauges(base) == (False, False), "calm traffic already flagged"
    switched_at, switched_rows = time.monotonic(), sent["n"]
    rows_now[0] = shifted
    first = dataset = None
    while time.monotonic() - switched_at < 60 and dataset is None:
        feature, whole = gauges(base)
        now = (time.monotonic() - switched_at, sent["n"] - switched_rows)
        if feature and first is None:
            first = now
        if whole:
            dataset = now
        time.sleep(0.1)
    stop_flag.set()
    sender.join()
    if first is None or dataset is None:
        text = httpx.get(f"{base}/metrics", timeout=5).text
        shown = [x for x in text.splitlines() if x.startswith(("quire_drift", "quire_dataset"))]
        raise AssertionError("the drift was not flagged within 60 s:\n" + "\n".join(shown))
    return {
        "feature_s": first[0], "feature_rows": first[1],
        "dataset_s": dataset[0], "dataset_rows": dataset[1],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0, help="requests a second")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store_env = prepare(Path(tmp) / "store")
        calm, _, schema = rows(store_env, 1000)
        shifted = drifted(store_env, schema.names())
        env = {**store_env, "QUIRE__MONITOR__DRIFT_SHARE": "0.15"}
        runs = []
        for _ in range(args.repeats):
            port = free_port()
            proc, _ = start("quire", port, env)
            try:
                runs.append(one_run(f"http://127.0.0.1:{port}", calm, shifted, args.rate))
                print(runs[-1], flush=True)
            finally:
                stop(proc)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    save("live_lag", {"rate": args.rate, "runs": runs, "median": median})
    bound_s = WINDOW / args.rate + 5
    print(f"medians of {args.repeats} runs at {args.rate:g} requests/s: first feature flagged "
          f"after {median['feature_rows']:.0f} rows / {median['feature_s']:.1f} s, dataset drift "
          f"after {median['dataset_rows']:.0f} rows / {median['dataset_s']:.1f} s "
          f"(one window: {WINDOW} rows, {bound_s:.1f} s with the check interval)")  # fmt: skip


if __name__ == "__main__":
    main()
