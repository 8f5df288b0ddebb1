"""Quire's drift check vs Evidently 0.7's DataDriftPreset report, on the same Parquet files.

    .venv/bin/python bench/bench_drift.py [--sizes 100000 1000000] [--repeats 3]
        [--quire-only 10000000] [--dashboard [--busy 2]]

Reference and current tables of N rows each: 15 numeric and 5 categorical columns, with a shift
injected in three numeric columns (+0.5 sd) and one categorical one (shares moved). Each tool
runs in a fresh process per round, the tools alternating round by round, and goes from the two
files to a verdict per column: Evidently reads both frames and runs
``Report([DataDriftPreset()], include_tests=True)``, and its verdict per column is Evidently's
own drift test (``ValueDriftTest`` failed), nothing recomputed by Quire; Quire profiles the
reference and checks the current file one column at a time
(``lib.data.drift_profile.profile_parquet`` and ``lib.data.drift.check_parquet``). Peak memory is
each child's own ``VmHWM`` (``bench/fresh.py``: ``ru_maxrss`` would include the parent's peak).
Figures are medians over the rounds. Every column's verdict must agree. ``--quire-only`` sizes
run Quire alone (Evidently would need many minutes and more memory than the machine has at 10
million rows). ``--dashboard`` also times opening the Voila
dashboard in headless Chromium: from navigation to the status shown, to the controls answering
(table sorted, feature picked) and to the first chart drawn; ``--busy N`` keeps N cores busy
with busy loops meanwhile, as a machine shared with other work would be.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, save
from bench.fresh import load_average, run_fresh

NUMERIC = [f"num_{i:02d}" for i in range(15)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
SHIFTED = ["num_00", "num_01", "num_02", "cat_0"]
KINDS = {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")}


def make_table(n: int, seed: int, shifted: bool, path: Path, chunk: int = 1_000_000) -> None:
    """Write ``n`` rows to ``path`` in chunks (bounded memory at 10 million rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    levels = [np.array([f"v{j}" for j in range(k)]) for k in (3, 5, 8, 12, 30)]
    writer = None
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        data: dict[str, Any] = {}
        for i, name in enumerate(NUMERIC):
            shift = 0.5 if shifted and name in SHIFTED else 0.0
            if i % 3 == 0:
                values = rng.normal(10 * i + shift, 1.0, m)
            elif i % 3 == 1:
                values = rng.gamma(2.0, 2.0, m) + shift * np.sqrt(8.0)
            else:
                values = rng.uniform(0, 1, m) + shift / np.sqrt(12)
            if i % 5 == 4:
                values[rng.random(m) < 0.05] = np.nan
            data[name] = values
        for i, name in enumerate(CATEGORICAL):
            k = len(levels[i])
            probs = np.linspace(1.0, 2.0, k)
            if shifted and name in SHIFTED:
                probs = probs[::-1]
            data[name] = pa.DictionaryArray.from_arrays(
                rng.choice(k, m, p=probs / probs.sum()).astype(np.int32), levels[i]
            )
        table = pa.table(data)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


QUIRE_SETUP = """
from pathlib import Path
from lib.data import drift, drift_profile
"""
QUIRE_BODY = """
kinds = {kinds!r}
profile = drift_profile.profile_parquet(Path({ref!r}), kinds)
t_profile = time.perf_counter() - t0
report = drift.check_parquet(profile, Path({cur!r}), columns=list(kinds))
extra = {{"profile_s": t_profile, "verdicts": {{c.column: c.drifted for c in report.columns}},
          "methods": {{c.column: c.method for c in report.columns}}}}
"""
EVIDENTLY_SETUP = """
import warnings
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
"""
# Evidently alone: its own data definition, its own per-column drift tests (a failed
# ValueDriftTest is a drifted column), categories as strings as Quire compares them.
EVIDENTLY_BODY = """
kinds = {kinds!r}
cats = [c for c, k in kinds.items() if k == "categorical"]
definition = DataDefinition(
    numerical_columns=[c for c, k in kinds.items() if k == "numeric"], categorical_columns=cats
)
sides = []
for path in ({cur!r}, {ref!r}):
    frame = pd.read_parquet(path, columns=list(kinds))
    frame[cats] = frame[cats].astype(str)
    sides.append(Dataset.from_pandas(frame, data_definition=definition))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    snapshot = Report([DataDriftPreset()], include_tests=True).run(*sides)
found = snapshot.dict()
verdicts, methods = {{}}, {{}}
for test in found["tests"]:
    params = test["metric_config"]["params"]
    if params.get("type", "").endswith("ValueDrift"):
        verdicts[params["column"]] = test["status"] == "FAIL"
        methods[params["column"]] = params["method"]
extra = {{"verdicts": verdicts, "methods": methods}}
"""


def run(tool: str, ref: Path, cur: Path) -> dict[str, Any]:
    setup, body = (
        (QUIRE_SETUP, QUIRE_BODY) if tool == "quire" else (EVIDENTLY_SETUP, EVIDENTLY_BODY)
    )
    return run_fresh(setup, body.format(kinds=KINDS, ref=str(ref), cur=str(cur)))


def measure_size(n: int, repeats: int, work: Path, with_evidently: bool) -> dict[str, Any]:
    ref, cur = work / f"ref_{n}.parquet", work / f"cur_{n}.parquet"
    make_table(n, 1, False, ref)
    make_table(n, 2, True, cur)
    runs: dict[str, list[dict[str, Any]]] = {"quire": [], "evidently": []}
    loads = []
    for round_ in range(repeats):
        # alternate which tool goes first, so neither always meets the other's leftovers
        order = ("evidently", "quire") if round_ % 2 == 0 else ("quire", "evidently")
        for tool in order if with_evidently else ("quire",):
            loads.append(load_average())
            runs[tool].append(run(tool, ref, cur))
            r = runs[tool][-1]
            print(f"  {n:,} rows {tool}: {r['seconds']:.2f} s, {r['peak_kib'] / 1024:.0f} MiB "
                  f"(load {loads[-1]})", flush=True)  # fmt: skip
    out: dict[str, Any] = {"rows": n, "runs": runs, "load_averages": loads}
    for tool, results in runs.items():
        if results:
            out[tool] = {
                "seconds": statistics.median(r["seconds"] for r in results),
                "cpu_seconds": statistics.median(r.get("cpu_seconds", np.nan) for r in results),
                "peak_mib": statistics.median(r["peak_kib"] for r in results) / 1024,
                "verdicts": results[0]["verdicts"],
            }
    out["quire"]["profile_s"] = statistics.median(r["profile_s"] for r in runs["quire"])
    drifted = {c for c, d in out["quire"]["verdicts"].items() if d}
    out["quire_found_injected"] = drifted == set(SHIFTED)
    if with_evidently:
        q, e = out["quire"]["verdicts"], out["evidently"]["verdicts"]
        out["same_verdicts"] = q == e
        out["evidently_found_injected"] = {c for c, d in e.items() if d} == set(SHIFTED)
    for path in (ref, cur):
        path.unlink()
    return out


POOL_READY_S = 20  # Voila refills its pre-run kernel 10 s after a visit; the run takes ~5 s
# Notes when the status and the first chart are in the page (ms since navigation start),
# whatever the benchmark is waiting for.
FIRST_CHART_JS = """
window.quireStatus = null;
window.quireFirstChart = null;
new MutationObserver((_, observer) => {
  if (!window.quireStatus && document.querySelector(".quire-status")) {
    window.quireStatus = performance.now();
  }
  if (document.querySelector(".js-plotly-plot")) {
    window.quireFirstChart = performance.now();
    observer.disconnect();
  }
}).observe(document, {subtree: true, childList: true});
"""
# A busy loop for --busy: keeps one core busy, ends by itself after 20 minutes at the latest.
BUSY = "import time\nend = time.monotonic() + 1200\nwhile time.monotonic() < end: pass"


def _visit(browser: Any, url: str, features: list[str]) -> dict[str, float]:
    """Open the page once in a fresh context; use the controls as soon as the status shows."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1300, "height": 2000})
    context.add_init_script(FIRST_CHART_JS)
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(url, timeout=90_000)
    page.locator(".quire-state").wait_for(timeout=60_000)
    status = time.perf_counter() - t0
    # interactive: both controls answered by the kernel (table re-sorted, picked feature shown)
    page.locator(".widget-dropdown select").first.select_option(label="column")
    page.locator(".widget-dropdown select").nth(1).select_option(label=features[-1])
    first_cell = page.locator("table.quire-table tbody tr td").first
    expect(first_cell).to_have_text(sorted(features)[0], timeout=60_000)
    expect(page.locator(".quire-picked")).to_have_text(features[-1], timeout=60_000)
    interactive = time.perf_counter() - t0
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    chart = page.evaluate("window.quireFirstChart") / 1000
    in_page = page.evaluate("window.quireStatus") / 1000
    page.locator(".js-plotly-plot .gtitle").filter(has_text=features[-1]).first.wait_for(
        timeout=60_000
    )
    picked_chart = time.perf_counter() - t0
    context.close()
    return {
        "status_s": status,
        "status_in_page_s": in_page,
        "interactive_s": interactive,
        "chart_s": chart,
        "picked_chart_s": picked_chart,
    }


def dashboard_open(repeats: int, work: Path, busy: int = 0) -> dict[str, Any]:
    """Time opening the dashboard on a tiny project's monitoring results.

    Each load arrives at an idle server (Voila's pre-run kernel ready) in a fresh browser
    context (nothing cached), the first load is not counted. ``busy`` processes each keep a
    core busy during the visits (a machine shared with other work).
    """
    from playwright.sync_api import sync_playwright

    from lib.core.params import folder_overrides
    from lib.monitoring.dashboard import RESULTS_ENV, Dashboard, voila_command
    from tests.server.helpers import free_port

    project = work / "project"
    args = [sys.executable, str(ROOT / "run_all.py"), "--params", str(ROOT / "params" / "ci.yaml")]
    args += [a for o in folder_overrides(project) for a in ("-p", o)]
    args += ["-p", "monitor.evidently_report=false"]
    subprocess.run(
        args, check=True, capture_output=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    results = next((project / "data" / "monitoring").iterdir())
    features = Dashboard(results).table["column"].tolist()
    port = free_port()
    env = {**os.environ, RESULTS_ENV: str(results), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(voila_command(port), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    times: list[dict[str, float]] = []
    burners = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    try:
        time.sleep(POOL_READY_S)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            for _ in range(repeats + 1):  # the first load warms the disk cache: not counted
                times.append(_visit(browser, f"http://127.0.0.1:{port}/", features))
                print("  dashboard: " + ", ".join(f"{k} {v:.2f}" for k, v in times[-1].items()))
                time.sleep(POOL_READY_S)  # a visitor arriving at an idle server
            browser.close()
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    counted = times[1:]
    out: dict[str, Any] = {k: statistics.median(t[k] for t in counted) for k in counted[0]}
    return {**out, "runs": times}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--quire-only", type=int, nargs="*", default=[10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dashboard", action="store_true")
    parser.add_argument("--busy", type=int, default=0, help="busy cores during the visits")
    args = parser.parse_args()
    results: dict[str, Any] = {"sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in args.sizes:
            results["sizes"].append(measure_size(n, args.repeats, work, True))
        for n in args.quire_only:
            results["sizes"].append(measure_size(n, args.repeats, work, False))
        if args.dashboard:
            results["dashboard"] = dashboard_open(5, work, args.busy)
            results["dashboard"]["busy"] = args.busy
    save("drift", results)
    print(table(results))


def table(results: dict[str, Any]) -> str:
    """The markdown table for docs/benchmarks.md."""
    lines = [
        "| rows per side | Evidently s | Evidently peak MiB | Quire s (profile + check) "
        "| Quire peak MiB | speed-up | memory ratio | same verdicts | injected drift found |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["sizes"]:
        q, e = r["quire"], r.get("evidently")
        quire = f"{q['seconds']:.2f} ({q['profile_s']:.2f} + {q['seconds'] - q['profile_s']:.2f})"
        if e:
            lines.append(
                f"| {r['rows']:,} | {e['seconds']:.1f} | {e['peak_mib']:.0f} | {quire} "
                f"| {q['peak_mib']:.0f} | **{e['seconds'] / q['seconds']:.0f}x** "
                f"| **{q['peak_mib'] / e['peak_mib']:.2f}** | {r['same_verdicts']} "
                f"| {r['quire_found_injected']} |"
            )
        else:
            lines.append(
                f"| {r['rows']:,} | not run | - | {quire} | {q['peak_mib']:.0f} | - | - | - "
                f"| {r['quire_found_injected']} |"
            )
    if "dashboard" in results:
        d = results["dashboard"]
        runs = d["runs"][1:]
        lines += [
            "\n| measure | median of 5 | runs |",
            "|---|---|---|",
        ]
        for key, label in (
            ("status_in_page_s", "status banner in the page"),
            ("status_s", "status banner seen by the benchmark"),
            ("interactive_s", "interactive: table re-sorted and feature picked (kernel answered)"),
            ("chart_s", "first chart drawn"),
            ("picked_chart_s", "picked feature's chart drawn"),
        ):
            each = ", ".join(f"{r[key]:.2f}" for r in runs)
            lines.append(f"| {label} | **{d[key]:.2f} s** | {each} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
