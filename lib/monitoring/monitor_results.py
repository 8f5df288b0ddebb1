"""Saved monitoring results: the files one monitor run leaves, and reading them back.

Kept free of heavy imports (no SciPy, scikit-learn or MLflow) so the dashboard opens fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from lib.core.atomic import atomic_path
from lib.core.contracts.summary import read_summary
from lib.core.errors import DataValidationError
from lib.core.layout import LATEST, SUMMARY

FEATURES = "features.parquet"
OUTPUTS = "outputs.parquet"
WINDOWS = "windows.parquet"
DISTRIBUTIONS = "distributions.json"
HISTORY = "history.parquet"
ALERTS = "alerts.jsonl"
# per-window results (issue #18): long tables, one row per window (and column or metric)
WINDOW_DRIFT = "window_drift.parquet"
MULTIVARIATE = "multivariate.parquet"
WINDOW_QUALITY = "window_quality.parquet"
WINDOW_PERFORMANCE = "window_performance.parquet"


def append_history(path: Path, rows: pd.DataFrame, keep_runs: int) -> None:
    """Append ``rows`` to the history table, keeping the latest ``keep_runs`` runs (atomic)."""
    frame = rows
    if path.exists():
        frame = pd.concat([pd.read_parquet(path), rows], ignore_index=True)
        runs = frame["run_id"].drop_duplicates()
        if len(runs) > keep_runs:
            frame = frame[frame["run_id"].isin(runs.iloc[-keep_runs:])]
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def load_latest(folder: Path) -> dict[str, Any]:
    """Read the saved results of the latest run (what the dashboard shows).

    Returns
    -------
    dict
        ``summary`` (a :class:`~lib.core.contracts.summary.MonitorSummary`), ``features``,
        ``outputs``, ``windows`` (None without labels), ``distributions``, and the folder's
        ``history`` and ``alerts`` tables (None before the first run or alert).
    """
    latest = folder / LATEST
    if not (latest / SUMMARY).exists():
        raise DataValidationError(
            f"{latest}: no monitoring results yet; run the monitor stage first "
            "(python run_all.py --only monitor)",
            path=latest,
            check="missing_file",
        )
    out: dict[str, Any] = {
        "summary": read_summary(latest / SUMMARY),
        "features": pd.read_parquet(latest / FEATURES),
        "outputs": pd.read_parquet(latest / OUTPUTS),
        "windows": pd.read_parquet(latest / WINDOWS) if (latest / WINDOWS).exists() else None,
        "distributions": json.loads((latest / DISTRIBUTIONS).read_text(encoding="utf-8")),
    }
    history = folder / HISTORY
    out["history"] = pd.read_parquet(history) if history.exists() else None
    alerts = folder / ALERTS
    out["alerts"] = (
        pd.read_json(alerts, lines=True) if alerts.exists() and alerts.stat().st_size else None
    )
    return out
