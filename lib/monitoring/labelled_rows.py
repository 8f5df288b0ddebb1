"""What the labelled rows of both sides say: the segment that fell most, and whether errors rose.

Used by :mod:`lib.monitoring.diagnosis` where the reference's and the current side's labelled
rows are at hand (the monitor stage passes them): the segment whose error rate rose most in
the windows where performance fell (:func:`worst_segment`), and whether a window's per-row
errors exceed the reference's by more than the two samples' sizes explain
(:func:`errors_rose`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_SEGMENT_ROWS = 30  # segments with fewer labelled current rows than this are not named
_QUANTILE_BINS = 4  # numeric features are cut at the reference's quartiles


@dataclass(frozen=True)
class Rows:
    """One side's rows for segment analysis: features, per-row error, and window key.

    ``errors`` is 0/1 misclassification (or absolute error) where the truth is known, NaN where
    not; ``window`` is each row's current window key (None where a row is in no window);
    ``confidence`` is a classifier's top class probability per row (None: not known).
    """

    frame: pd.DataFrame
    errors: np.ndarray
    window: np.ndarray | None = None
    confidence: np.ndarray | None = None  # the model's top class probability (classifiers)


@dataclass(frozen=True)
class Segment:
    """The segment whose error rate rose most in the windows where performance fell."""

    column: str
    segment: str
    rows: int  # labelled current rows in the segment, in those windows
    reference_error: float
    current_error: float

    @property
    def rise(self) -> float:
        """How much the error rate rose against the reference."""
        return self.current_error - self.reference_error


def _segments(values: pd.Series, reference: pd.Series, kind: str) -> pd.Series:
    """Label each value with its segment: the category, or the reference quantile bin."""
    if kind == "categorical":
        return values.astype("string").fillna("(missing)").astype(str)
    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(float)
    edges = _quantile_edges(ref, _QUANTILE_BINS) if len(ref) else np.array([])
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    names = [f"in [{a:.4g}, {b:.4g})" for a, b in itertools.pairwise(bins)]
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    at = np.searchsorted(bins, x, side="right") - 1  # bins are [left, right)
    labels = [names[i] if np.isfinite(v) else "(missing)" for i, v in zip(at, x, strict=True)]
    return pd.Series(labels, index=values.index, dtype=object)


def _quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Return the distinct inner edges cutting ``values`` into ``bins`` quantile bins."""
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def _rates(errors: np.ndarray, segments: pd.Series) -> dict[str, tuple[float, int]]:
    """Return each segment's mean error and labelled row count."""
    grouped = pd.Series(errors, index=segments.index).groupby(segments)
    means, sizes = grouped.mean(), grouped.size()
    return {str(k): (float(means[k]), int(sizes[k])) for k in means.index}


def worst_segment(
    reference: Rows,
    current: Rows,
    windows: Sequence[str],
    kinds: Mapping[str, str],
    *,
    min_rows: int = MIN_SEGMENT_ROWS,
) -> Segment | None:
    """Return the segment whose error rate rose most in ``windows`` against the reference.

    A segment is a category of a categorical feature, or a reference-quartile bin of a numeric
    one. Only labelled rows count; segments with fewer than ``min_rows`` labelled current rows
    are skipped. A segment the reference barely holds is compared with the reference's overall
    error rate. None when no segment's error rate rose.
    """
    if current.window is None or not windows:
        return None
    cur_err = np.asarray(current.errors, dtype=float)
    ref_err = np.asarray(reference.errors, dtype=float)
    in_windows = pd.Series(current.window).astype(str).isin(list(windows)).to_numpy()
    keep = in_windows & np.isfinite(cur_err)
    ref_keep = np.isfinite(ref_err)
    if keep.sum() < min_rows or not ref_keep.any():
        return None
    overall = float(ref_err[ref_keep].mean())
    best: Segment | None = None
    for column, kind in kinds.items():
        if column not in current.frame.columns or column not in reference.frame.columns:
            continue
        ref_col = reference.frame[column].reset_index(drop=True)
        cur_seg = _segments(current.frame[column].reset_index(drop=True)[keep], ref_col, kind)
        ref_seg = _segments(ref_col[ref_keep], ref_col, kind)
        cur_rate = _rates(cur_err[keep], cur_seg)
        ref_rate = _rates(ref_err[ref_keep], ref_seg)
        for label, (rate, size) in cur_rate.items():
            if size < min_rows:
                continue
            ref_mean, ref_size = ref_rate.get(label, (overall, 0))
            before = ref_mean if ref_size >= min_rows else overall
            seg = Segment(str(column), label, size, before, rate)
            if seg.rise > 0 and (best is None or seg.rise > best.rise):
                best = seg
    return best


ERRORS_ALPHA = 0.05  # a window's errors rose when the one-sided test's p-value is below this


@dataclass(frozen=True)
class ErrorRise:
    """How a window's labelled errors compare with the reference's: p-value and a sentence."""

    p_value: float
    text: str

    @property
    def rose(self) -> bool:
        """Whether the rise is more than the two samples' sizes explain."""
        return self.p_value < ERRORS_ALPHA


def errors_rose(reference: Rows, current: Rows, window: str) -> ErrorRise | None:
    """Test whether ``window``'s misclassifications exceed the reference's at equal confidence.

    Both sides' labelled rows are cut into ``CONFIDENCE_BANDS`` bands of the model's confidence
    (quantiles of both sides' ``confidence`` together; one band without it). Where P(y|x) did
    not change, a band's errors are spread over its rows of the two sides at random, so the
    window's error count in each band is hypergeometric given the band's rows and errors (the
    Cochran-Mantel-Haenszel reading); the one-sided p-value is that of the window's total, exact
    by convolution (normal with a continuity correction beyond ``_EXACT_ERRORS``). Comparing at
    equal confidence keeps a covariate shift toward uncertain rows from counting, and the
    reference's own size is in the test. None for regression (errors not 0/1) or where either
    side has no labelled row.
    """
    if current.window is None:
        return None
    ref_all = np.asarray(reference.errors, dtype=float)
    cur_all = np.asarray(current.errors, dtype=float)
    ref_at = np.isfinite(ref_all)
    cur_at = np.isfinite(cur_all) & (pd.Series(current.window).astype(str) == window).to_numpy()
    ref_e, cur_e = ref_all[ref_at], cur_all[cur_at]
    if not len(ref_e) or not len(cur_e):
        return None
    if not (np.isin(ref_e, (0.0, 1.0)).all() and np.isin(cur_e, (0.0, 1.0)).all()):
        return None
    band = _bands(reference, current, ref_at, cur_at)
    ref_band, cur_band = band[: len(ref_e)], band[len(ref_e) :]
    strata = []
    for b in np.unique(band):
        rows_w, rows_r = int((cur_band == b).sum()), int((ref_band == b).sum())
        errors = int(cur_e[cur_band == b].sum() + ref_e[ref_band == b].sum())
        strata.append((rows_w + rows_r, errors, rows_w))
    k_cur, k_ref = int(cur_e.sum()), int(ref_e.sum())
    text = (
        f"{k_cur} errors in {len(cur_e)} labelled rows against the reference's {k_ref} in "
        f"{len(ref_e)}, at equal confidence"
    )
    return ErrorRise(_upper_tail(k_cur, strata), text)


CONFIDENCE_BANDS = 5  # bands of the model's confidence the errors are compared within
_EXACT_ERRORS = 5_000  # above this many errors possible in the window, the normal tail


def _bands(reference: Rows, current: Rows, ref_at: np.ndarray, cur_at: np.ndarray) -> np.ndarray:
    """Return each labelled row's confidence band (reference rows first); one band without."""
    if reference.confidence is None or current.confidence is None:
        return np.zeros(int(ref_at.sum() + cur_at.sum()), dtype=int)
    both = np.concatenate(
        [
            np.asarray(reference.confidence, dtype=float)[ref_at],
            np.asarray(current.confidence, dtype=float)[cur_at],
        ]
    )
    return np.searchsorted(_quantile_edges(both, CONFIDENCE_BANDS), both, side="right")


def _upper_tail(observed: int, strata: list[tuple[int, int, int]]) -> float:
    """P(sum >= observed) for independent hypergeometric counts (rows, errors, drawn) per band."""
    from scipy import stats  # the monitor stage's model has imported it; the checks need not

    if sum(min(k, n) for _, k, n in strata) > _EXACT_ERRORS:
        mean = sum(n * k / rows for rows, k, n in strata)
        var = sum(
            n * (rows - n) * k * (rows - k) / (rows**2 * (rows - 1))
            for rows, k, n in strata
            if rows > 1
        )
        return float(stats.norm.sf((observed - 0.5 - mean) / np.sqrt(var))) if var > 0 else 1.0
    pmf = np.ones(1)
    for rows, k, n in strata:
        pmf = np.convolve(pmf, stats.hypergeom.pmf(np.arange(min(k, n) + 1), rows, k, n))
    return float(min(1.0, pmf[observed:].sum()))
