"""Quire's per-window monitoring against NannyML 0.13.1 (the anchor), window by window.

    bash bench/nannyml_env.sh            # once: NannyML in bench/.venv-nannyml
    .venv/bin/python bench/compare_nannyml.py [--cases car_loan multiclass ...] [--work DIR]

For each case both tools analyse the same rows cut into the same windows (NannyML's
``chunk_size`` is Quire's ``"N rows"`` window, ``chunk_period`` a period window): NannyML in its
own venv (``bench/nannyml_anchor.py``), Quire here through ``lib.monitoring`` (window_drift,
multivariate, window_quality, estimate). The cases:

- ``car_loan``, ``multiclass``, ``car_price``, ``car_loan_quality``: datasets shipped inside the
  nannyml package (binary, multiclass, regression; the last with missing values);
- ``generator``: the project's churn generator, 20,000 reference rows and 20,000 current ones of
  which the last half come from its drifted production regime (shifted columns, a new payment
  method, a changed relation), scored by a model trained on a third draw;
- ``gapminder``: a real table shipped with plotly (life expectancy by country, 1952-2007),
  windows by year, a linear model of life expectancy trained on the reference years.

Per window it compares: CBPE/DLE estimates (|difference| within ``TOLERANCE`` where the method is
the same), realized metrics, univariate and multivariate drift verdicts (and how the statistics
relate), and data-quality counts. It prints a markdown table per case with the tolerance and
writes everything to ``bench/results/nannyml_anchor.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import save
from bench.fresh import NANNYML_PYTHON, ROOT

TOLERANCE = 0.01  # CBPE estimates, where the method is the same
NANNYML_CASES = ("car_loan", "multiclass", "car_price", "car_loan_quality")
CASES = (*NANNYML_CASES, "generator", "gapminder")
# Quire's metric name for NannyML's, per task (NannyML's multiclass metrics are macro averages)
METRICS = {
    "binary": {m: m for m in ("roc_auc", "f1", "precision", "recall", "accuracy")},
    "multiclass": {
        "roc_auc": "roc_auc",
        "f1": "f1_macro",
        "precision": "precision_macro",
        "recall": "recall_macro",
        "accuracy": "accuracy",
    },
    "regression": {"mae": "mae", "rmse": "rmse"},
}


def nannyml(*args: str) -> str:
    """Run the anchor script in NannyML's venv; return its stdout."""
    if not NANNYML_PYTHON.exists():
        raise SystemExit(f"{NANNYML_PYTHON} is missing: build it with `bash bench/nannyml_env.sh`")
    cmd = [str(NANNYML_PYTHON), str(ROOT / "bench" / "nannyml_anchor.py"), *args]
    env = {"OMP_NUM_THREADS": "1", "NML_DISABLE_USAGE_LOGGING": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"nannyml_anchor {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


# --- cases made here -------------------------------------------------------------------------


def _write_case(folder: Path, ref: pd.DataFrame, ana: pd.DataFrame, case: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ref.to_parquet(folder / "reference.parquet", index=False)
    ana.to_parquet(folder / "analysis.parquet", index=False)
    (folder / "case.json").write_text(json.dumps(case, indent=2) + "\n")


def generator_case(folder: Path, rows: int = 20_000, window: int = 2_000) -> None:
    """The project's generator: the current side's second half drawn from its drifted regime."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from lib.core.param_sections import GeneratorParams, ProductionParams
    from lib.data.generator import TARGET, iter_chunks

    # the production draw as long as the reference one (its default is 5,000 rows)
    p = GeneratorParams(rows=rows, chunk_rows=rows, production=ProductionParams(rows=rows))
    numeric = ["age", "tenure_months", "monthly_charges", "total_charges", "avg_session_minutes",
               "data_usage_gb", "support_calls", "num_dependents", "satisfaction_score"]  # fmt: skip
    categorical = ["region", "contract_type", "payment_method", "plan_tier", "is_senior",
                   "has_partner", "paperless_billing", "auto_pay"]  # fmt: skip

    def draw(seed: int, production: bool) -> pd.DataFrame:
        frame = pd.concat(list(iter_chunks(p, seed, production=production)), ignore_index=True)
        for c in categorical:
            frame[c] = (
                frame[c]
                .astype(object)
                .where(frame[c].notna())
                .map(lambda v: v if v is None or isinstance(v, str) or v != v else str(v))
            )
        return frame[numeric + categorical + [TARGET]]

    train, ref = draw(11, False), draw(12, False)
    half = rows // 2
    ana = pd.concat([draw(13, False).iloc[:half], draw(14, True).iloc[half:]], ignore_index=True)
    codes = {c: sorted(str(v) for v in train[c].dropna().unique()) for c in categorical}

    def encode(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[numeric].astype(float).copy()
        for c in categorical:  # unseen and missing: NaN (the model's missing branch)
            out[c] = frame[c].map({v: i for i, v in enumerate(codes[c])}).astype(float)
        return out

    model = HistGradientBoostingClassifier(
        categorical_features=[len(numeric) + i for i in range(len(categorical))], random_state=0
    ).fit(encode(train), train[TARGET])
    for frame in (ref, ana):
        proba = model.predict_proba(encode(frame))
        frame["prediction"] = model.classes_[proba.argmax(axis=1)]
        frame["proba_0"], frame["proba_1"] = proba[:, 0], proba[:, 1]
    case = {
        "name": "generator", "task": "binary", "target": TARGET, "classes": [0, 1],
        "numeric": numeric, "categorical": categorical, "time_column": None,
        "chunk": {"size": window},
        "source": "lib.data.generator (seeds 12; 13 then production 14 from row 10,001)",
    }  # fmt: skip
    _write_case(folder, ref, ana, case)


def gapminder_case(folder: Path) -> None:
    """plotly's gapminder table: reference 1952-1977, current 1982-2007, windows by year."""
    import plotly.express as px
    from sklearn.linear_model import LinearRegression

    g = px.data.gapminder()
    frame = pd.DataFrame(
        {
            "year": pd.to_datetime(g["year"].astype(str) + "-07-01"),
            "continent": g["continent"].astype(str),
            "log_gdp": np.log10(g["gdpPercap"]),
            "log_pop": np.log10(g["pop"].astype(float)),
            "lifeExp": g["lifeExp"],
        }
    ).sort_values(["year", "continent"], kind="stable", ignore_index=True)
    ref = frame[frame["year"].dt.year <= 1977].reset_index(drop=True)
    ana = frame[frame["year"].dt.year > 1977].reset_index(drop=True)
    x = pd.get_dummies(ref[["log_gdp", "log_pop", "continent"]], dtype=float)
    model = LinearRegression().fit(x, ref["lifeExp"])
    for side in (ref, ana):
        xs = pd.get_dummies(side[["log_gdp", "log_pop", "continent"]], dtype=float)
        side["prediction"] = model.predict(xs.reindex(columns=x.columns, fill_value=0.0))
    case = {
        "name": "gapminder", "task": "regression", "target": "lifeExp", "classes": [],
        "numeric": ["log_gdp", "log_pop"], "categorical": ["continent"], "time_column": "year",
        "chunk": {"period": "Y"}, "source": "plotly.express.data.gapminder()",
    }  # fmt: skip
    _write_case(folder, ref, ana, case)


def make_case(name: str, folder: Path) -> None:
    """Write the case ``name`` into ``folder``."""
    if name in NANNYML_CASES:
        nannyml("export", name, str(folder))
    elif name == "generator":
        generator_case(folder)
    else:
        gapminder_case(folder)


# --- Quire's side ----------------------------------------------------------------------------


def quire(
    folder: Path, nannyml_methods: bool = True, reads: str = "columns"
) -> tuple[dict[str, pd.DataFrame], float]:
    """Run Quire's per-window analyses on a case; return its tables and the seconds taken.

    ``reads``: ``columns`` hands the checks the two files (:class:`lib.core.frames.ParquetColumns`,
    read a column or a block of rows at a time), ``frames`` reads both files whole first, as
    the monitor stage holds its rows. The tables are the same.

    ``nannyml_methods`` sets NannyML's drift methods on every column (Wasserstein for numbers,
    Jensen-Shannon for categories) instead of the ones Quire picks (the same on references of
    more than 1,000 rows, except numeric columns with at most 5 values: Jensen-Shannon).
    """
    from lib.core import frames
    from lib.core.param_sections import MonitorParams
    from lib.monitoring import window_checks
    from lib.monitoring.windows import parse_spec, reference_windows, split

    case = json.loads((folder / "case.json").read_text())
    read = frames.ParquetColumns if reads == "columns" else frames.read_parquet
    ref, cur = read(folder / "reference.parquet"), read(folder / "analysis.parquet")
    kinds = {c: "numeric" for c in case["numeric"]} | {
        c: "categorical" for c in case["categorical"]
    }
    chunk = case["chunk"]
    spec = parse_spec(f"{chunk['size']} rows" if "size" in chunk else chunk["period"])
    time_col = case["time_column"]
    ref_times = ref[time_col] if time_col else None
    cur_times = cur[time_col] if time_col else None
    t0 = time.perf_counter()
    cur_windows = split(len(cur), spec, cur_times)
    ref_windows = reference_windows(len(ref), spec, cur_windows, ref_times)
    # NannyML's methods on every column: Wasserstein for numbers, Jensen-Shannon for categories
    outputs = [c for c in cur.columns if c.startswith("proba_")] + ["prediction"]
    numeric_outputs = set(outputs) - ({"prediction"} if case["task"] != "regression" else set())
    methods = {c: "wasserstein" if k == "numeric" else "jensenshannon" for c, k in kinds.items()}
    methods |= {c: "wasserstein" if c in numeric_outputs else "jensenshannon" for c in outputs}
    params = MonitorParams(methods=methods if nannyml_methods else {})
    # the monitor stage's own run of the four checks (side by side; performance with the
    # stage's monitor.bootstrap resamples)
    tables = window_checks.run_window_checks(
        ref, cur, kinds, ref_windows, cur_windows, params,
        performance=window_checks.Performance(
            task=case["task"], classes=case["classes"] or None, target=case["target"],
            metrics=list(METRICS[case["task"]].values()),
        ),
    )  # fmt: skip
    out = {
        "drift": tables.drift,
        "multivariate": tables.multivariate,
        "quality": tables.quality,
        "performance": tables.performance,
    }
    return out, time.perf_counter() - t0


# --- comparison -------------------------------------------------------------------------------


def _align(nml: pd.DataFrame, ours: pd.DataFrame, by: str) -> pd.DataFrame:
    """Pair NannyML's chunks with Quire's windows by period, position and ``by``."""
    nml = nml.assign(period=nml["period"].replace({"analysis": "current"}))
    nml = nml.assign(pos=nml.groupby(["period", by]).cumcount())
    ours = ours.assign(pos=ours.groupby(["period", by]).cumcount())
    return nml.merge(ours, on=["period", "pos", by], suffixes=("_nml", "_q"))


def compare_drift(nml: pd.DataFrame, ours: pd.DataFrame) -> dict[str, Any]:
    """Verdicts per window and column; how Quire's statistic relates to NannyML's."""
    both = _align(nml, ours, "column")
    cur = both[both["period"] == "current"]
    ratio = (both["value"] / both["statistic"]).replace([np.inf, -np.inf], np.nan)
    per_column = ratio.groupby(both["column"]).agg(["median", "min", "max"])
    differ = cur[cur["alert_nml"] != cur["alert_q"]]
    return {
        "pairs": len(cur),
        "same_rows": bool((both["rows"] == both["end_index"] - both["start_index"] + 1).all()),
        "alerts_nannyml": int(cur["alert_nml"].sum()),
        "alerts_quire": int(cur["alert_q"].sum()),
        "verdicts_agree": float((cur["alert_nml"] == cur["alert_q"]).mean()),
        "differ": differ[
            ["window", "column", "value", "upper_threshold", "statistic", "upper"]
        ].to_dict("records"),
        "ratio_spread": float((per_column["max"] / per_column["min"]).max() - 1),
        "ratio_by_column": per_column["median"].round(4).to_dict(),
    }


def compare_multivariate(nml: pd.DataFrame, ours: pd.DataFrame) -> dict[str, Any]:
    """Reconstruction error per window: values, bands and verdicts."""
    both = _align(nml.assign(k=0), ours.assign(k=0), "k")
    cur = both[both["period"] == "current"]
    return {
        "pairs": len(cur),
        "max_abs_diff": float((both["value_nml"] - both["value_q"]).abs().max()),
        "max_rel_diff": float(
            ((both["value_nml"] - both["value_q"]) / both["value_nml"]).abs().max()
        ),
        "alerts_nannyml": int(cur["alert_nml"].sum()),
        "alerts_quire": int(cur["alert_q"].sum()),
        "verdicts_agree": float((cur["alert_nml"] == cur["alert_q"]).mean()),
        "differ": cur.loc[
            cur["alert_nml"] != cur["alert_q"],
            [
                "window",
                "value_nml",
                "lower_threshold",
                "upper_threshold",
                "value_q",
                "lower",
                "upper",
            ],
        ].to_dict("records"),
    }


def compare_quality(nml: pd.DataFrame, ours: pd.DataFrame) -> dict[str, Any]:
    """Missing, unseen and out-of-range counts per window and column."""
    out: dict[str, Any] = {}
    for check, ours_col in (("missing", "missing"), ("unseen", "unseen"),
                            ("out_of_range", "out_of_range")):  # fmt: skip
        part = nml[nml["check"] == check]
        if part.empty:
            continue
        both = _align(part, ours, "column")
        diff = (both["value"].astype(float) - both[ours_col].astype(float)).abs()
        cur = both[both["period"] == "current"]
        out[check] = {
            "pairs": len(both),
            "total_nannyml": int(both["value"].sum()),
            "total_quire": int(both[ours_col].sum()),
            "windows_differ": int((diff > 0).sum()),
            "current_alerts_nannyml": int(cur["alert_nml"].sum()),
        }
    return out


def compare_performance(nml: pd.DataFrame, ours: pd.DataFrame, task: str) -> dict[str, Any]:
    """Estimated and realized metrics per window; alerts on the estimate."""
    nml = nml.assign(metric=nml["metric"].map(METRICS[task])).rename(columns={"alert": "alert_nml"})
    both = _align(nml, ours, "metric")
    cur = both[both["period"] == "current"]
    out: dict[str, Any] = {}
    for metric, part in both.groupby("metric", sort=False):
        est = (part["estimated_nml"] - part["estimated_q"]).abs()
        real = (part["realized_nml"] - part["realized_q"]).abs()
        c = cur[cur["metric"] == metric]
        out[str(metric)] = {
            "pairs": len(part),
            "max_abs_diff_estimated": float(est.max()),
            "median_abs_diff_estimated": float(est.median()),
            "within_tolerance": float((est <= TOLERANCE).mean()),
            "max_abs_diff_realized": float(real.max()),
            "alerts_nannyml": int(c["alert_nml"].sum()),
            "alerts_quire": int(c["alert_estimated"].sum()),
            "verdicts_agree": float((c["alert_nml"] == c["alert_estimated"]).mean()),
            "differ": c.loc[
                c["alert_nml"] != c["alert_estimated"],
                [
                    "window",
                    "estimated_nml",
                    "estimated_q",
                    "lower_threshold",
                    "upper_threshold",
                    "lower",
                    "upper",
                    "realized_nml",
                ],
            ].to_dict("records"),
        }
    return out


def compare_case(name: str, work: Path) -> dict[str, Any]:
    """Make the case, run both tools, compare their tables."""
    folder = work / name
    make_case(name, folder)
    timings = json.loads(nannyml("run", str(folder)).strip().splitlines()[-1])
    ours, seconds = quire(folder)
    read = {k: pd.read_parquet(folder / "nannyml" / f"{k}.parquet")
            for k in ("univariate", "multivariate", "quality", "performance")}  # fmt: skip
    case = json.loads((folder / "case.json").read_text())
    return {
        "case": name,
        "source": case["source"],
        "task": case["task"],
        "chunk": case["chunk"],
        "windows": {
            "reference": int(
                (ours["drift"]["period"] == "reference").sum() / ours["drift"]["column"].nunique()
            ),
            "current": int(
                (ours["drift"]["period"] == "current").sum() / ours["drift"]["column"].nunique()
            ),
        },
        "seconds": {
            "nannyml": sum(v for k, v in timings.items() if k != "nannyml"),
            "quire": seconds,
        },
        "drift": compare_drift(read["univariate"], ours["drift"]),
        "multivariate": compare_multivariate(read["multivariate"], ours["multivariate"]),
        "quality": compare_quality(read["quality"], ours["quality"]),
        "performance": compare_performance(read["performance"], ours["performance"], case["task"]),
    }


def table(results: list[dict[str, Any]]) -> str:
    """The markdown tables for docs/benchmarks.md."""
    lines = [
        f"Tolerance: CBPE estimates within {TOLERANCE} of NannyML's in every window.\n",
        "| case | windows ref / cur | univariate verdicts agree (alerts N / Q) "
        "| multivariate agree (alerts N / Q), max rel. diff | quality counts differing "
        "| seconds N / Q |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        d, m, q = r["drift"], r["multivariate"], r["quality"]
        differing = ", ".join(f"{k} {v['windows_differ']}/{v['pairs']}" for k, v in q.items())
        lines.append(
            f"| {r['case']} | {r['windows']['reference']} / {r['windows']['current']} "
            f"| {d['verdicts_agree']:.1%} ({d['alerts_nannyml']} / {d['alerts_quire']}) "
            f"| {m['verdicts_agree']:.1%} ({m['alerts_nannyml']} / {m['alerts_quire']}), "
            f"{m['max_rel_diff']:.2%} | {differing} "
            f"| {r['seconds']['nannyml']:.1f} / {r['seconds']['quire']:.1f} |"
        )
    lines += [
        "\n| case | metric | max abs. diff estimated | within tolerance | max abs. diff "
        "realized | estimate alerts N / Q |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for metric, p in r["performance"].items():
            lines.append(
                f"| {r['case']} | {metric} | {p['max_abs_diff_estimated']:.4f} "
                f"| {p['within_tolerance']:.0%} | {p['max_abs_diff_realized']:.4f} "
                f"| {p['alerts_nannyml']} / {p['alerts_quire']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    parser.add_argument("--work", type=Path, help="keep the cases and NannyML's tables here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for name in args.cases:
            results.append(compare_case(name, work))
            print(f"  {name}: done", flush=True)
    save("nannyml_anchor", {"tolerance": TOLERANCE, "cases": results})
    print(table(results))


if __name__ == "__main__":
    main()
