"""Live drift: the served rows of a sliding window, judged as the monitor stage judges them.

The server hands every request's log columns (:func:`lib.core.contracts.predlog.log_columns`:
what the prediction log stores) to :meth:`LiveDrift.add`, a queue append on the request path. A
background task calls :meth:`LiveDrift.update` every few seconds: it moves what was queued into
the window (the last ``window_rows`` rows, and with ``window_seconds`` only those served that
recently), then checks the window against the champion's reference profile with the monitor
stage's own :func:`lib.data.drift.check_drift` - the same columns (``monitor.columns`` /
``exclude``), methods, thresholds and drift share - so a window's statistic and verdict equal the
monitor stage's on the same rows. Memory is bounded by the window, whatever the traffic.

Data quality per column comes with it: the share of missing values, of numbers outside the
reference's range, and of categories the reference never had.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lib.core.contracts import predlog
from lib.data import drift
from lib.data.drift_profile import Kind, Profile, as_categories, numeric_values


@dataclass(frozen=True)
class Quality:
    """Shares of a window's rows, for one column."""

    missing: float
    out_of_range: float  # numeric: present values outside the reference profile's range (its
    # extremes; beyond 10,000 reference rows, its outermost kept quantiles)
    unknown: float  # categorical: present values the reference never had


@dataclass(frozen=True)
class LiveVerdict:
    """One update: the window's drift reports and data quality."""

    rows: int
    features: drift.DriftReport
    outputs: drift.DriftReport
    quality: dict[str, Quality]
    prediction_shares: dict[str, float]  # a classifier's predicted classes in the window


class LiveDrift:
    """A sliding window of served rows and its drift against a reference profile.

    Parameters
    ----------
    profile
        The champion's reference profile (features and model outputs).
    kinds
        The feature columns to check and how (:func:`lib.monitoring.inputs.drift_kinds`).
    outputs
        The model-output columns to check (prediction, class probabilities) that the profile has.
    methods, thresholds, drift_share
        As ``monitor.methods``, ``monitor.thresholds`` and ``monitor.drift_share``.
    window_rows, window_seconds
        The window: the last ``window_rows`` served rows, only those of the last
        ``window_seconds`` when set.
    min_rows
        No verdict before the window holds this many rows.
    classes
        A classifier's classes (for the prediction shares); None for regression.
    """

    def __init__(
        self,
        profile: Profile,
        kinds: Mapping[str, Kind],
        outputs: list[str],
        *,
        methods: Mapping[str, str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        drift_share: float = 0.5,
        window_rows: int = 1000,
        window_seconds: float | None = None,
        min_rows: int = 100,
        classes: list[Any] | None = None,
    ) -> None:
        self.profile = profile
        self.kinds = dict(kinds)
        self.outputs = list(outputs)
        self.methods = {k: v for k, v in (methods or {}).items() if k in self.kinds}
        self.thresholds = {k: v for k, v in (thresholds or {}).items() if k in self.kinds}
        self.drift_share = drift_share
        self.window_rows = window_rows
        self.window_seconds = window_seconds
        self.min_rows = min_rows
        self.classes = classes
        self.columns = [*self.kinds, *self.outputs]
        self._pending: deque[dict[str, np.ndarray]] = deque()  # appends are thread-safe
        self._window: deque[dict[str, np.ndarray]] = deque()  # oldest first, one per request
        self._rows = 0
        self._lock = threading.Lock()  # update() runs in one thread at a time

    def add(self, columns: Mapping[str, Any]) -> None:
        """Queue one request's log columns (only the checked ones and the serving time)."""
        wanted = {k: np.asarray(columns[k]) for k in self.columns if k in columns}
        if len(wanted) == len(self.columns) and predlog.TIME in columns:
            wanted[predlog.TIME] = np.asarray(columns[predlog.TIME])
            self._pending.append(wanted)

    @property
    def rows(self) -> int:
        """Rows in the window (after the last update)."""
        return self._rows

    def window(self) -> pd.DataFrame:
        """Return the window's rows, oldest first (after taking in what was queued)."""
        with self._lock:
            self._take()
            return self._frame()

    def update(self) -> LiveVerdict | None:
        """Take what was queued into the window and judge it; None below ``min_rows`` rows."""
        frame = self.window()
        if len(frame) < max(self.min_rows, 1):
            return None
        # a column with no value in the window has no statistic (its missing share says why)
        names = [c for c in self.kinds if frame[c].notna().any()]
        features = drift.check_drift(
            self.profile,
            frame,
            columns=names,
            methods={k: v for k, v in self.methods.items() if k in names},
            thresholds={k: v for k, v in self.thresholds.items() if k in names},
            drift_share=self.drift_share,
        )
        outputs = drift.check_drift(
            self.profile, frame, columns=[c for c in self.outputs if frame[c].notna().any()]
        )
        shares: dict[str, float] = {}
        if self.classes is not None and predlog.PREDICTION in frame:
            counts = frame[predlog.PREDICTION].astype(str).value_counts()
            shares = {str(c): float(counts.get(str(c), 0)) / len(frame) for c in self.classes}
        quality = {name: self._quality(name, frame[name]) for name in self.kinds}
        return LiveVerdict(len(frame), features, outputs, quality, shares)

    def _take(self) -> None:
        while self._pending:
            item = self._pending.popleft()
            self._window.append(item)
            self._rows += len(item[predlog.TIME])
        while self._window and self._rows - len(self._window[0][predlog.TIME]) >= self.window_rows:
            self._rows -= len(self._window.popleft()[predlog.TIME])
        if self.window_seconds is not None:
            now = np.datetime64(pd.Timestamp.now(tz="UTC").tz_localize(None), "ns")
            oldest = now - np.timedelta64(int(self.window_seconds * 1e9), "ns")
            while self._window and self._window[0][predlog.TIME].max() < oldest:
                self._rows -= len(self._window.popleft()[predlog.TIME])

    def _frame(self) -> pd.DataFrame:
        """Return the window as a frame: its last ``window_rows`` rows."""
        names = [*self.columns, predlog.TIME]
        if not self._window:
            return pd.DataFrame({n: [] for n in names})
        frame = pd.DataFrame({n: np.concatenate([item[n] for item in self._window]) for n in names})
        return frame.tail(self.window_rows).reset_index(drop=True)

    def _quality(self, name: str, values: pd.Series) -> Quality:
        col = self.profile.columns[name]
        n = max(len(values), 1)
        if col.kind == "categorical":
            present = as_categories(values).dropna()
            known = set(col.counts or {})
            unknown = int((~present.isin(known)).sum()) if known else 0
            return Quality((n - len(present)) / n, 0.0, unknown / n)
        numbers = numeric_values(values)
        present = numbers[np.isfinite(numbers)]
        outside = 0
        if col.count and len(col.values):
            outside = int(((present < col.values[0]) | (present > col.values[-1])).sum())
        return Quality((n - len(present)) / n, outside / n, 0.0)
