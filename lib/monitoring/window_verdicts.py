"""Per-window drift verdicts: a statistic against its band or threshold, p-values as a family.

The alert rule is :mod:`lib.monitoring.window_drift`'s (its module doc gives the reasons): a
distance alerts above the reference windows' band; a p-value below its column's threshold once
a run's p-values are taken together (Benjamini-Hochberg).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lib.data import drift


def verdict(method: str, value: float, lower: float, upper: float) -> bool:
    """Apply the alert rule to one window's statistic; a missing statistic or band never alerts."""
    if method in drift.P_VALUE_METHODS:  # as the whole-period engine: ks at the threshold too
        return bool(value <= lower if method == "ks" else value < lower)
    return bool(np.isfinite(upper) and value > upper)


def taken_together(frame: pd.DataFrame) -> pd.DataFrame:
    """Judge the current windows' p-values as one family (see the module doc).

    ``lower`` holds each column's threshold on entry; on return the raw p-value cut that the
    Benjamini-Hochberg procedure at that threshold implies, and ``alert`` follows it (the
    reference windows' alerts, shown but never raised, too).
    """
    tested = frame["method"].isin(drift.P_VALUE_METHODS)
    family = tested & (frame["period"] == "current") & frame["statistic"].notna()
    m = int(family.sum())
    if m == 0:
        return frame
    from scipy.stats import false_discovery_control  # only with p-values (lib.data.drift_stats)

    adjusted = pd.Series(
        false_discovery_control(frame.loc[family, "statistic"].to_numpy(float), method="bh"),
        index=frame.index[family],
    )
    out = frame.copy()
    given = frame["lower"]  # each column's threshold, before any is replaced by its cut
    pairs = frame.loc[tested, ["method", "lower"]].drop_duplicates().itertuples(index=False)
    for method, threshold in pairs:
        rows = tested & (frame["method"] == method) & (given == threshold)
        # the step-up cut at this threshold: k of the m tests alert
        hits = int((adjusted <= threshold if method == "ks" else adjusted < threshold).sum())
        cut = max(hits, 1) * float(threshold) / m
        out.loc[rows, "lower"] = cut
        out.loc[rows, "alert"] = [
            verdict(str(method), v, cut, float("nan")) for v in out.loc[rows, "statistic"]
        ]
    return out
