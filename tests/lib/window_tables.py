"""Hand-made monitoring results with the per-window tables of issue #18, for the dashboard tests.

The four tables follow the shared schema exactly; bands are the reference windows' mean +- 3 sd
(lib.monitoring.windows.reference_band) and a current window alerts when it leaves its band, so
the alerts are the ones a correct monitor would write. One current window (``ALERT_WINDOW``) has
drift injected in ``ALERT_COLUMN``, the multivariate value, the performance and the quality of
``QUALITY_COLUMN``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core.layout import LATEST, SUMMARY
from lib.monitoring.monitor_results import (
    DISTRIBUTIONS,
    FEATURES,
    MULTIVARIATE,
    OUTPUTS,
    WINDOW_DRIFT,
    WINDOW_PERFORMANCE,
    WINDOW_QUALITY,
)
from lib.monitoring.windows import reference_band

SUMMARY_FIXTURE = Path(__file__).parents[1] / "fixtures" / "contracts" / "monitoring_summary.json"
ALERT_COLUMN = "f07"
QUALITY_COLUMN = "f03"
P_VALUE_COLUMN = "segment"  # checked with a chi-square test: a fixed threshold, not a band
ROWS = 500


def alert_window(n_cur: int) -> int:
    """The current window (0-based among the current ones) that has everything injected."""
    return (2 * n_cur) // 3


def _windows(n_ref: int, n_cur: int) -> pd.DataFrame:
    """Weekly windows: the reference's, then the current ones, each of ``ROWS`` rows."""
    starts = pd.date_range("2025-01-06", periods=n_ref + n_cur, freq="7D")
    return pd.DataFrame(
        {
            "period": ["reference"] * n_ref + ["current"] * n_cur,
            "window": [str(pd.Period(s, "W")) for s in starts],
            "start": starts,
            "end": starts + pd.Timedelta(7, "D"),
            "rows": ROWS,
        }
    )


def _banded(
    windows: pd.DataFrame, values: np.ndarray, side: str = "upper", lower_limit: float = 0.0
) -> pd.DataFrame:
    """One statistic per window with the reference windows' band and the alert flags."""
    ref = values[(windows["period"] == "reference").to_numpy()]
    band = reference_band(ref, sigmas=3, lower_limit=lower_limit, side=side)  # type: ignore[arg-type]
    current = (windows["period"] == "current").to_numpy()
    return windows.assign(
        lower=np.nan if band.lower is None else band.lower,
        upper=np.nan if band.upper is None else band.upper,
        alert=[bool(c and band.alerts(v)) for c, v in zip(current, values, strict=True)],
    )


def columns(n_features: int) -> list[str]:
    """The checked columns: ``f00``..., one categorical, and the model's outputs."""
    return [f"f{i:02d}" for i in range(n_features - 1)] + [
        P_VALUE_COLUMN,
        "prediction",
        "proba_yes",
    ]


def window_tables(n_ref: int = 20, n_cur: int = 50, n_features: int = 20, seed: int = 0) -> dict:
    """Return the four per-window tables, keyed by their file names."""
    rng = np.random.default_rng(seed)
    windows = _windows(n_ref, n_cur)
    hit = n_ref + alert_window(n_cur)  # row of the injected window in ``windows``
    drift = []
    for name in columns(n_features):
        if name == P_VALUE_COLUMN:
            p = rng.uniform(0.2, 1.0, len(windows))
            p[hit] = 0.001
            part = windows.assign(
                column=name, method="chisquare", statistic=p, lower=0.05, upper=np.nan
            )
            part["alert"] = (part["period"] == "current") & (p < 0.05)
        else:
            values = rng.uniform(0.025, 0.035, len(windows))  # bounded: no chance alert
            if name == ALERT_COLUMN:
                values[hit] = 0.4
            part = _banded(windows, values).assign(
                column=name, method="wasserstein", statistic=values
            )
        drift.append(part)
    window_drift = pd.concat(drift, ignore_index=True)[
        [*windows.columns, "column", "method", "statistic", "lower", "upper", "alert"]
    ]

    value = rng.uniform(0.95, 1.05, len(windows))
    value[hit] = 1.6
    multivariate = _banded(windows, value, side="both").assign(
        method="pca_reconstruction", value=value
    )[[*windows.columns, "method", "value", "lower", "upper", "alert"]]

    perf = []
    labelled = np.where(np.arange(len(windows)) < n_ref + (4 * n_cur) // 5, ROWS, 0)
    for metric, center in (("roc_auc", 0.80), ("accuracy", 0.74)):
        est = rng.uniform(center - 0.01, center + 0.01, len(windows))
        real = est + rng.uniform(-0.005, 0.005, len(windows))
        est[hit], real[hit] = center - 0.15, center - 0.16
        real = np.where(labelled > 0, real, np.nan)
        band = _banded(windows, real, side="both", lower_limit=0.0)
        part = band.assign(
            metric=metric,
            estimated=est,
            estimated_lower=est - 0.02,
            estimated_upper=est + 0.02,
            realized=real,
            realized_lower=real - 0.03,
            realized_upper=real + 0.03,
            labelled_rows=labelled,
            lower_estimated=band["lower"],
            upper_estimated=band["upper"],
            alert_estimated=[
                c and (v < lo or v > up)
                for c, v, lo, up in zip(
                    band["period"] == "current", est, band["lower"], band["upper"], strict=True
                )
            ],
            alert_realized=band["alert"],
        )
        perf.append(part)
    window_performance = pd.concat(perf, ignore_index=True)[
        [*windows.columns, "metric", "estimated", "estimated_lower", "estimated_upper",
         "realized", "realized_lower", "realized_upper", "labelled_rows", "lower", "upper",
         "lower_estimated", "upper_estimated", "alert_estimated", "alert_realized"]
    ]  # fmt: skip

    quality = []
    for name in columns(n_features)[:n_features]:
        missing = np.zeros(len(windows), dtype=int)
        part = windows.assign(column=name, out_of_range=0, unseen=0, type_errors=0, reason="")
        if name == QUALITY_COLUMN:
            missing[hit] = 200
            part.loc[hit, "reason"] = "missing rate 40% above the reference band (0% to 1.2%)"
        if name == "f05":
            part.loc[3, "out_of_range"] = 2  # a reference window: reported, never alerting
        part = part.assign(missing=missing, missing_rate=missing / ROWS)
        part["alert"] = part["reason"] != ""
        quality.append(part)
    window_quality = pd.concat(quality, ignore_index=True)[
        [*windows.columns, "column", "missing", "missing_rate", "out_of_range", "unseen",
         "type_errors", "alert", "reason"]
    ]  # fmt: skip
    return {
        WINDOW_DRIFT: window_drift,
        MULTIVARIATE: multivariate,
        WINDOW_QUALITY: window_quality,
        WINDOW_PERFORMANCE: window_performance,
    }


def write_results(folder: Path, tables: dict | None = None, n_features: int = 20) -> Path:
    """Write a hand-made monitoring results folder (``tables`` beside it); return ``folder``."""
    latest = folder / LATEST
    latest.mkdir(parents=True, exist_ok=True)
    shutil.copy(SUMMARY_FIXTURE, latest / SUMMARY)
    rng = np.random.default_rng(1)
    names = columns(n_features)
    features = pd.DataFrame(
        {
            "column": names[:n_features],
            "kind": "numeric",
            "method": "wasserstein",
            "score": rng.uniform(0, 0.2, n_features),
            "threshold": 0.1,
            "reference_rows": 10_000,
            "current_rows": 25_000,
            "reference_missing": 0.0,
            "current_missing": 0.01,
        }
    )
    features["drifted"] = features["score"] >= 0.1
    features.to_parquet(latest / FEATURES, index=False)
    features.head(0).reindex(range(2)).assign(
        column=names[n_features:], kind="numeric", method="wasserstein", score=0.02,
        threshold=0.1, drifted=False,
    ).to_parquet(latest / OUTPUTS, index=False)  # fmt: skip
    edges = np.linspace(0, 1, 11).tolist()
    dists = {
        n: {"kind": "numeric", "edges": edges, "reference": [0.1] * 10, "current": [0.1] * 10}
        for n in names
    }
    (latest / DISTRIBUTIONS).write_text(json.dumps(dists), encoding="utf-8")
    for name, table in (tables or {}).items():
        table.to_parquet(latest / name, index=False)
    return folder


def real_window_drift(data: pd.DataFrame, reference_until: int, rows: int) -> pd.DataFrame:
    """Per-window drift of a real quarterly table (``year``, ``quarter``), as the monitor does.

    The reference (years before ``reference_until``) and the current rows are cut into windows
    of ``rows`` rows (lib.monitoring.windows); each window's columns are compared with the whole
    reference by the drift engine's Wasserstein distance, and a current window alerts when it
    leaves the reference windows' band (upwards only).
    """
    from lib.data.drift import column_drift
    from lib.data.drift_profile import build_profile
    from lib.monitoring.windows import WindowSpec, split

    times = pd.PeriodIndex.from_fields(
        year=data["year"].astype(int), quarter=data["quarter"].astype(int), freq="Q"
    ).to_timestamp()
    features = [c for c in data.columns if c not in ("year", "quarter")]
    sides = {
        "reference": data[data["year"] < reference_until].reset_index(drop=True),
        "current": data[data["year"] >= reference_until].reset_index(drop=True),
    }
    side_times = {k: times[(data["year"] < reference_until) == (k == "reference")] for k in sides}
    profile = build_profile(sides["reference"], dict.fromkeys(features, "numeric"))
    parts = []
    for period, frame in sides.items():
        for w in split(len(frame), WindowSpec("rows", size=rows)):
            stamps = side_times[period][w.index]
            for name in features:
                verdict = column_drift(
                    profile.columns[name], frame[name].iloc[w.index], "wasserstein"
                )
                parts.append(
                    {"period": period, "window": f"{stamps[0]:%Y}Q{stamps[0].quarter}",
                     "start": stamps[0], "end": stamps[-1] + pd.offsets.QuarterBegin(),
                     "rows": w.rows, "column": name, "method": verdict.method,
                     "statistic": verdict.score}
                )  # fmt: skip
    drift = pd.DataFrame(parts)
    out = []
    for _, part in drift.groupby("column", sort=False):
        values = part["statistic"].to_numpy()
        out.append(_banded(part.drop(columns="statistic"), values).assign(statistic=values))
    return pd.concat(out, ignore_index=True)[SCHEMA_DRIFT]


SCHEMA_DRIFT = [
    "period", "window", "start", "end", "rows", "column", "method", "statistic", "lower",
    "upper", "alert",
]  # fmt: skip


def randhie_splits(seeds: int) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]]:
    """Yield statsmodels' randhie table (20,190 real rows) split at random, nothing shifted.

    Per seed: a 4,000-row reference (a test split's size), the next 5,000 rows as current data,
    and the column kinds (numeric above 10 distinct values). For chance-alert rates.
    """
    import statsmodels.api as sm

    data = sm.datasets.randhie.load_pandas().data
    kinds = {c: "numeric" if data[c].nunique() > 10 else "categorical" for c in data.columns}
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(data))
        ref = data.iloc[order[:4000]].reset_index(drop=True)
        cur = data.iloc[order[4000:9000]].reset_index(drop=True)
        yield ref, cur, kinds
