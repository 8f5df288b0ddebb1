"""Per-window monitoring, Quire vs NannyML 0.13.1, on a million current rows.

    bash bench/nannyml_env.sh     # once: NannyML in bench/.venv-nannyml
    .venv/bin/python bench/bench_monitor.py [--rows 1000000] [--reference 500000]
        [--windows 20] [--repeats 3] [--nannyml-repeats 3]

One case in the layout both sides read (``bench/nannyml_anchor.py``): 20 features (15 numeric,
some with 5% missing, and 5 categorical with 3 to 30 levels), a binary model's ``prediction`` and
``proba_0``/``proba_1`` (a logistic score of the features, so calibrated), the truth on the
reference only. The current side is ``--rows`` rows with a shift in three numeric columns and one
categorical one from its second half on; both sides are cut into windows of ``rows / windows``
rows. The whole per-window analysis is timed, from the two Parquet files to the tables:
univariate drift (every feature and model output), multivariate drift (PCA reconstruction), CBPE
(roc_auc, f1, precision, recall, accuracy) and data quality (missing, unseen, out of range).
Quire runs twice: handed the two files (``ParquetColumns``: each check reads a column, or a
block of rows, when it needs it) and reading both files whole first (as the monitor stage holds
its rows); the tables are the same.

Each tool runs in a fresh process per round (NannyML in its own venv), alternating the order
round by round; time is wall time, memory each child's own peak resident set (``VmHWM``, imports
included). Figures are medians over the rounds; ``--nannyml-repeats`` can run NannyML fewer times
when a round takes too long. Both with ``OMP_NUM_THREADS=1``; the load average before each run
is recorded, as the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import save
from bench.fresh import NANNYML_PYTHON, load_average, run_fresh

NUMERIC = [f"num_{i:02d}" for i in range(15)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
SHIFTED = ["num_00", "num_01", "num_02", "cat_0"]
LEVELS = (3, 5, 8, 12, 30)


def _features(rng: np.random.Generator, n: int, shifted: np.ndarray) -> pd.DataFrame:
    """Draw ``n`` rows; rows where ``shifted`` holds get the injected shift."""
    data: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        shift = np.where(shifted, 0.5, 0.0) if name in SHIFTED else 0.0
        if i % 3 == 0:
            values = rng.normal(10 * i, 1.0, n) + shift
        elif i % 3 == 1:
            values = rng.gamma(2.0, 2.0, n) + shift * np.sqrt(8.0)
        else:
            values = rng.uniform(0, 1, n) + shift / np.sqrt(12)
        if i % 5 == 4:
            values[rng.random(n) < 0.05] = np.nan
        data[name] = values
    for i, name in enumerate(CATEGORICAL):
        k = LEVELS[i]
        probs = np.linspace(1.0, 2.0, k)
        codes = rng.choice(k, n, p=probs / probs.sum())
        if name in SHIFTED:
            flipped = rng.choice(k, n, p=probs[::-1] / probs.sum())
            codes = np.where(shifted, flipped, codes)
        # a pandas category, as the project's ingest writes text columns (dictionary-encoded)
        data[name] = pd.Categorical.from_codes(codes, [f"v{j}" for j in range(k)])
    return pd.DataFrame(data)


def _score(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    """Add a calibrated binary model's outputs and a truth drawn from them."""
    z = (
        0.8 * (frame["num_00"] - 0.0)
        + 0.6 * (frame["num_01"] - 4.0) / 2.8
        - 1.5 * (frame["num_02"] - 0.5)
        + 0.7 * (frame["cat_0"] == "v0")
    ).to_numpy()
    proba = 1 / (1 + np.exp(-z))
    out = frame.copy()
    out["target"] = (rng.random(len(frame)) < proba).astype(np.int64)
    out["prediction"] = (proba >= 0.5).astype(np.int64)
    out["proba_0"], out["proba_1"] = 1 - proba, proba
    return out


def make_case(folder: Path, n_ref: int, n_cur: int, windows: int) -> None:
    """Write the benchmark's case (reference labelled, current not)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    ref = _score(rng, _features(rng, n_ref, np.zeros(n_ref, dtype=bool)))
    cur = _score(rng, _features(rng, n_cur, np.arange(n_cur) >= n_cur // 2))
    cur["target"] = np.nan  # no labels yet: performance is estimated only
    ref.to_parquet(folder / "reference.parquet", index=False)
    cur.to_parquet(folder / "analysis.parquet", index=False)
    case = {
        "name": "bench_monitor", "task": "binary", "target": "target", "classes": [0, 1],
        "numeric": NUMERIC, "categorical": CATEGORICAL, "time_column": None,
        "chunk": {"size": n_cur // windows}, "source": "bench/bench_monitor.py",
    }  # fmt: skip
    (folder / "case.json").write_text(json.dumps(case, indent=2) + "\n")


NANNYML_SETUP = """
from pathlib import Path
from bench import nannyml_anchor as anchor
"""
NANNYML_BODY = """
case, ref, ana = anchor.load_case(Path({folder!r}), as_object=False)
tables = {{name: fn(case, ref, ana) for name, fn in anchor.ANALYSES.items()}}
drift = tables["drift"]
alerts = drift[(drift["period"] == "analysis") & drift["alert"]]
extra = {{"drift_alerts": sorted(set(alerts["column"])),
          "windows": int((drift["period"] == "analysis").sum() / drift["column"].nunique())}}
"""
QUIRE_SETUP = """
from pathlib import Path
from bench.compare_nannyml import quire
# imported before the clock starts, as NannyML's are (the checks import no more of SciPy:
# CBPE's isotonic regression is lib.monitoring.isotonic's)
import lib.monitoring.window_checks
"""
QUIRE_BODY = """
tables, _ = quire(Path({folder!r}), nannyml_methods=False, reads={reads!r})
drift = tables["drift"]
alerts = drift[(drift["period"] == "current") & drift["alert"]]
extra = {{"drift_alerts": sorted(set(alerts["column"])),
          "windows": int((drift["period"] == "current").sum() / drift["column"].nunique())}}
"""


TOOLS = ("nannyml", "quire", "quire_frames")  # Quire reading columns, and whole frames first


def run(tool: str, folder: Path) -> dict[str, Any]:
    """One fresh child of ``tool`` on the case."""
    if tool == "nannyml":
        body = NANNYML_BODY.format(folder=str(folder))
        return run_fresh(NANNYML_SETUP, body, python=NANNYML_PYTHON, timeout=7200)
    reads = "frames" if tool == "quire_frames" else "columns"
    return run_fresh(QUIRE_SETUP, QUIRE_BODY.format(folder=str(folder), reads=reads))


def measure(folder: Path, repeats: int, nannyml_repeats: int) -> dict[str, Any]:
    """Alternate the tools round by round; return every run and the medians."""
    runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in TOOLS}
    for round_ in range(max(repeats, nannyml_repeats)):
        order = TOOLS if round_ % 2 == 0 else TOOLS[::-1]
        for tool in order:
            if len(runs[tool]) >= (nannyml_repeats if tool == "nannyml" else repeats):
                continue
            load = load_average()
            result = run(tool, folder)
            result["load_average"] = load
            runs[tool].append(result)
            print(
                f"  {tool}: {result['seconds']:.1f} s (CPU {result['cpu_seconds']:.1f} s), "
                f"{result['peak_kib'] / 1024:.0f} MiB "
                f"(load {load})",
                flush=True,
            )
    out: dict[str, Any] = {"runs": runs}
    for tool, results in runs.items():
        out[tool] = {
            "seconds": statistics.median(r["seconds"] for r in results),
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in results),
            "peak_mib": statistics.median(r["peak_kib"] for r in results) / 1024,
            "rounds": len(results),
            "drift_alerts": results[0]["drift_alerts"],
            "windows": results[0]["windows"],
        }
    for tool in TOOLS[1:]:
        out[tool]["paired_ratio"] = paired_ratio(runs["nannyml"], runs[tool])
    return out


def paired_ratio(nannyml: list[dict[str, Any]], quire: list[dict[str, Any]]) -> float:
    """The median of round-by-round ratios, over the rounds both tools ran.

    The two run back to back in each round, so a round's ratio sees one state of the shared
    machine; the ratio of the medians also compares NannyML's rounds with Quire's rounds run
    after NannyML's last (``--repeats`` above ``--nannyml-repeats``), when the machine may be
    faster or slower.
    """
    pairs = zip(nannyml, quire, strict=False)
    return float(statistics.median(n["seconds"] / q["seconds"] for n, q in pairs))


NAMES = {
    "nannyml": "NannyML 0.13.1",
    "quire": "Quire (reads the files a column at a time)",
    "quire_frames": "Quire (reads both files whole first)",
}


def table(results: dict[str, Any]) -> str:
    """The markdown table for docs/benchmarks.md."""
    n = results["nannyml"]
    each = {k: ", ".join(f"{x['seconds']:.1f}" for x in v) for k, v in results["runs"].items()}
    return "\n".join(
        [
            "| tool | rounds | wall s (median) | runs s | CPU s (median) | peak MiB (median) "
            "| windows | columns with a drift alert |",
            "|---|---|---|---|---|---|---|---|",
            *(
                f"| {NAMES[key]} | {r['rounds']} | {r['seconds']:.1f} "
                f"| {each[key]} | {r['cpu_seconds']:.1f} "
                f"| {r['peak_mib']:.0f} | {r['windows']} | {', '.join(r['drift_alerts'])} |"
                for key, r in ((k, results[k]) for k in TOOLS)
            ),
            "",
            *(
                f"- {NAMES[key]}: speed-up **{n['seconds'] / q['seconds']:.1f}x** wall "
                f"(round by round {q['paired_ratio']:.1f}x), "
                f"{n['cpu_seconds'] / q['cpu_seconds']:.1f}x CPU (target >= 10x), memory ratio "
                f"**{q['peak_mib'] / n['peak_mib']:.3f}** (target <= 0.25)."
                for key, q in ((k, results[k]) for k in TOOLS[1:])
            ),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=500_000)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nannyml-repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "case"
        make_case(folder, args.reference, args.rows, args.windows)
        results = measure(folder, args.repeats, args.nannyml_repeats)
    results["setup"] = vars(args)
    save("monitor", results)
    print(table(results))


if __name__ == "__main__":
    main()
