"""The recent regime the gate judges on: held-out rows of the latest labelled served windows.

A retrain ingests the served rows whose true label came back (``ingest.feedback``) as one extra
raw table (``feedback-<model>-<hash>.parquet``, in serving order), and the ingest stage splits
them like every other row. The gate's recent rows are the *test-split* rows among the last
``evaluate.gate.recent_windows`` windows of that table (``all``, the default: every one): the
challenger never trained on them, and they are the newest data with labels. Windows are cut
as the monitor cuts them (:mod:`lib.core.windowspec`): ``N windows``, ``N rows`` (serving
order, or ``evaluate.gate.time_column`` order) or a period of ``evaluate.gate.time_column``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core.contracts.manifest import Manifest
from lib.core.errors import DataValidationError, ParamsError
from lib.core.param_sections import GateParams
from lib.core.windowspec import Window, parse_spec, split
from lib.data.schema import Schema
from lib.data.validate import conform

_KEY = "evaluate.gate"


@dataclass(frozen=True)
class RecentRows:
    """Which test rows are the recent regime, what they are, or why there are none."""

    index: np.ndarray  # positions into the test split, in test-split order
    label: str  # e.g. "last 1 of 4 windows (rows 1,501-2,000) of 2,000 labelled served rows"
    skipped: str = ""  # why there is no recent comparison ("" when there is one)


def served_tables(manifest: Manifest, model: str) -> list[Path]:
    """Return the labelled served-row tables the ingest stage read (named by the feedback step)."""
    prefix = f"feedback-{model}-"
    return [Path(s.path) for s in manifest.sources if Path(s.path).name.startswith(prefix)]


def row_keys(frame: pd.DataFrame, schema: Schema) -> pd.Series:
    """Return a key per row: the id column when the data has one, else a hash of the row."""
    if schema.id_column and schema.id_column in frame.columns:
        return frame[schema.id_column].astype(str).reset_index(drop=True)
    columns = [c for c in [*schema.names(), schema.target] if c in frame.columns]
    hashed = pd.util.hash_pandas_object(frame[columns].astype(str), index=False)
    return hashed.astype(str).reset_index(drop=True)


def _times(served: pd.DataFrame, column: str | None) -> pd.Series | None:
    if column is None:
        return None
    if column not in served.columns:
        raise ParamsError(
            f"{_KEY}.time_column: {column!r} is not a column of the labelled served rows; use one "
            f"of {', '.join(map(str, served.columns))}, or null for serving order",
            key=f"{_KEY}.time_column",
        )
    return pd.to_datetime(served[column], errors="coerce", utc=True).dt.tz_localize(None)


def _windows(served: pd.DataFrame, gate: GateParams) -> tuple[pd.DataFrame, list[Window]]:
    """Order the served rows (by the time column when there is one) and cut them."""
    spec = parse_spec(gate.window, key=f"{_KEY}.window")
    times = _times(served, gate.time_column)
    if spec.kind == "period" and times is None:
        raise ParamsError(
            f"{_KEY}.window: {spec.text!r} cuts by time; set {_KEY}.time_column to a date column "
            "of the data, or use 'N rows' / 'N windows' (serving order)",
            key=f"{_KEY}.window",
        )
    if times is not None:
        order = np.argsort(times.to_numpy(), kind="stable")
        served, times = served.iloc[order], times.iloc[order].reset_index(drop=True)
    windows = [w for w in split(len(served), spec, times) if w.rows]
    return served.reset_index(drop=True), windows


def _which(chosen: int, windows: int) -> str:
    if chosen == windows:
        return "the only window" if windows == 1 else f"all {windows} windows"
    return f"last {chosen} of {windows} windows"


def recent_rows(
    manifest: Manifest, schema: Schema, test: pd.DataFrame, gate: GateParams, model: str
) -> RecentRows:
    """Find the test rows of the most recent labelled served windows.

    Parameters
    ----------
    manifest
        The processed data's manifest: its sources name the served-row table ingested.
    schema
        The data's schema (to read that table as the splits were read, and key its rows).
    test
        The test split.
    gate
        ``evaluate.gate``: how many windows, how they are cut, the minimum row count.
    model
        The registered model name (the served-row table is named after it).

    Returns
    -------
    RecentRows
        Positions into ``test`` and a label, or an empty index and why there is no comparison.

    Raises
    ------
    DataValidationError
        When the served-row table the manifest names is gone.
    ParamsError
        When ``evaluate.gate.window`` or ``time_column`` does not fit the data.
    """
    none = np.array([], dtype=int)
    if gate.recent_windows == 0:
        return RecentRows(none, "", f"{_KEY}.recent_windows is 0")
    tables = served_tables(manifest, model)
    if not tables:
        return RecentRows(
            none, "", "the ingested data holds no labelled served rows (ingest.feedback)"
        )
    parts = []
    for path in tables:
        if not path.exists():
            raise DataValidationError(
                f"{path}: the labelled served rows the ingest stage read are gone; rerun the "
                "ingest stage (python run_all.py --retrain)",
                path=path,
                check="gate",
            )
        parts.append(conform(pd.read_parquet(path), schema, path)[0])
    served, windows = _windows(pd.concat(parts, ignore_index=True), gate)
    chosen = windows if gate.recent_windows == "all" else windows[-gate.recent_windows :]
    wanted = row_keys(served, schema).iloc[np.concatenate([w.index for w in chosen])]
    index = np.flatnonzero(row_keys(test, schema).isin(set(wanted)).to_numpy())
    span = chosen[0].key if len(chosen) == 1 else f"{chosen[0].key} to {chosen[-1].key}"
    label = (
        f"recent regime: {_which(len(chosen), len(windows))} ({span}) of "
        f"{len(served):,} labelled served rows, test split"
    )
    if len(index) < gate.min_rows:
        where = (
            "the labelled served rows"
            if gate.recent_windows == "all"
            else f"the last {len(chosen)} window(s) of the labelled served rows"
        )
        fix = "" if gate.recent_windows == "all" else f" or widen {_KEY}.window / recent_windows"
        skipped = (
            f"{where} hold {len(index)} test rows, fewer than {_KEY}.min_rows {gate.min_rows}; "
            f"label more served rows{fix}"
        )
        return RecentRows(index, label, skipped)
    return RecentRows(index, label)
