"""CBPE's calibration: NannyML's test of whether to calibrate, and the isotonic maps.

Each class's scores are calibrated one-vs-rest on the reference with isotonic regression, but
only where calibration helps (:func:`needs_calibration`: the expected calibration error over
10 stratified 90/10 splits must fall); multiclass probabilities are then renormalised to sum to
1 (:class:`Calibrator`). The isotonic fit (:func:`isotonic_fit`) and the splits
(:func:`stratified_splits`) are scikit-learn's (the splits to the last bit, the fit to a few units
in the last place), without its per-row Python.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from math import ceil

import numpy as np

from lib.data.drift_profile import stable_order
from lib.model.scoring import roc_auc
from lib.monitoring.isotonic import isotonic_regression


def _ece(truth: np.ndarray, score: np.ndarray, bins: int) -> float:
    """Return the expected calibration error over equal-count bins of sorted scores."""
    n = len(score)
    if n <= 2 * bins:
        bins = n // 2
    width = n // bins
    edges = np.arange(0, n + 1, width)
    edges[-1] = n
    order = np.argsort(score)
    s, t = score[order], truth[order]
    return float(
        sum((b - a) / n * abs(s[a:b].mean() - t[a:b].mean()) for a, b in itertools.pairwise(edges))
    )


CHECK_ROWS = 100_000  # reference rows the calibration test looks at (a sample above that)
_RESOLUTION = np.finfo(np.float64).resolution  # scores closer than this are one (scikit-learn's)


@dataclass(frozen=True)
class Isotonic:
    """An increasing isotonic map: scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``.

    ``x_`` and ``y_`` are its thresholds (scikit-learn's ``X_thresholds_``/``y_thresholds_``):
    scores between two are mapped linearly, scores beyond the ends to the end values.
    """

    x_: np.ndarray
    y_: np.ndarray

    def __call__(self, score: np.ndarray) -> np.ndarray:
        """Map ``score`` (a missing score stays missing)."""
        mapped: np.ndarray = np.interp(score, self.x_, self.y_)
        return mapped


def isotonic_fit(score: np.ndarray, truth: np.ndarray, order: np.ndarray | None = None) -> Isotonic:
    """Fit :class:`Isotonic` as scikit-learn's ``IsotonicRegression.fit`` does, step for step.

    ``order``: the rows sorted by score, then truth (``np.lexsort((truth, score))``), when the
    caller has it. scikit-learn sorts on every fit; the calibration test fits ten times on
    subsets of one sample, so it sorts once and passes each subset's rows in that order (a
    subset of a sorted sequence is sorted). Then, as scikit-learn: scores within ``resolution``
    of their run's first score are one point with the mean truth, and the means are fitted
    weighted by the run sizes (:func:`lib.monitoring.isotonic.isotonic_regression`: the fit of
    scipy's pool-adjacent-violators, which scikit-learn calls, without importing
    ``scipy.optimize``). On the monitor bench's 500,000 reference rows the calibration test and
    the fit took 0.60 s with scikit-learn's estimator and splitter, 0.30 s with these; the maps
    agree to within a few units in the last place (tested).
    """
    if order is None:
        order = by_score(score, truth)
    x, y = np.asarray(score, dtype=float)[order], np.asarray(truth, dtype=float)[order]
    starts = np.flatnonzero(np.r_[True, np.diff(x) >= _RESOLUTION])
    spans = np.r_[starts[1:], len(x)]
    if np.any(x[spans - 1] - x[starts] >= _RESOLUTION):  # a chain of near ties: split as sklearn
        starts = _run_starts(x)
    sizes = np.diff(np.r_[starts, len(x)])
    fitted = isotonic_regression(np.add.reduceat(y, starts), sizes)
    # a constant run needs its ends only: the map is the same, and mapping a million scores
    # searches a few hundred thresholds instead of one per distinct score (0.5 s to 0.1 s)
    keep = np.ones(len(fitted), dtype=bool)
    keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
    return Isotonic(x[starts][keep], fitted[keep])


def by_score(score: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Return ``np.lexsort((truth, score))``: the rows by score, then truth, then position.

    A stable sort by truth, then a stable sort by score by bucket first
    (:func:`lib.data.drift_profile.stable_order`): the same permutation, 40 against 69 ms
    for 500,000 rows.
    """
    first = np.argsort(truth, kind="stable")
    order: np.ndarray = first[stable_order(np.asarray(score, dtype=float)[first])]
    return order


def _run_starts(x: np.ndarray) -> np.ndarray:
    """Return where scikit-learn's runs start: a score ``resolution`` above the run's first."""
    starts, first = [0], x[0]
    for j in range(1, len(x)):
        if x[j] - first >= _RESOLUTION:
            starts.append(j)
            first = x[j]
    return np.asarray(starts)


def stratified_splits(
    truth: np.ndarray, *, splits: int, test_size: float, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield scikit-learn's ``StratifiedShuffleSplit(splits, test_size, random_state=seed)``.

    The same rows in the same order from the same random draws (tested against it), without
    its per-row Python lists: 0.24 s to about 0.02 s for ten splits of 100,000 rows. Every
    class needs at least two rows.
    """
    n_test = ceil(test_size * len(truth))
    n_train = len(truth) - n_test
    _, inverse, counts = np.unique(truth, return_inverse=True, return_counts=True)
    by_class = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    rng = np.random.RandomState(seed)  # scikit-learn's check_random_state of a seed
    for _ in range(splits):
        n_i = _approximate_mode(counts, n_train, rng)
        t_i = _approximate_mode(counts - n_i, n_test, rng)
        train, test = [], []
        for i, rows in enumerate(by_class):
            shuffled = rows.take(rng.permutation(counts[i]), mode="clip")
            train.append(shuffled[: n_i[i]])
            test.append(shuffled[n_i[i] : n_i[i] + t_i[i]])
        yield rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _approximate_mode(
    class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState
) -> np.ndarray:
    """scikit-learn's private ``utils.extmath._approximate_mode``, the same draws (1.7-1.9).

    The closest counts per class to the mode of the multivariate hypergeometric; ties broken at
    random. Copied rather than imported: importing ``sklearn.utils`` loads scikit-learn's base
    and scipy.stats, 70 MiB and 0.6 s of every monitor's checks for these 15 lines, and a
    private function may change without notice (the test against ``StratifiedShuffleSplit``
    itself would say so).
    """
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    counts: np.ndarray = floored.astype(int)
    return counts


def needs_calibration(truth: np.ndarray, score: np.ndarray, *, bins: int = 10) -> bool:
    """Whether isotonic regression makes ``score`` better calibrated for ``truth`` (0/1).

    NannyML's test: no when one class only, or when the scores separate the classes almost
    perfectly (ROC AUC > 0.999); else calibrate on 90% and measure on 10%, ten times
    (stratified, seed 42), and calibrate when the pooled expected calibration error falls.
    Above ``CHECK_ROWS`` reference rows the test runs on that many drawn at random (seed 42):
    NannyML uses every row, which on 500,000 cost 2.7 s of a 9 s monitor run for a yes/no that a
    sample of 100,000 already settles (the calibration itself is fitted on every row).
    """
    truth = np.asarray(truth, dtype=float)
    score = np.asarray(score)
    if len(truth) > CHECK_ROWS:
        keep = np.sort(np.random.default_rng(42).choice(len(truth), CHECK_ROWS, replace=False))
        truth, score = truth[keep], score[keep]
    counts = np.unique(truth, return_counts=True)[1]
    # one row of a class cannot be split both ways (scikit-learn's splitter raises there)
    if len(counts) < 2 or counts.min() < 2 or len(truth) < 40:
        return False
    if roc_auc(truth > 0, score) > 0.999:
        return False
    order = by_score(score, truth)
    held, raw, fitted = [], [], []
    for train, test in stratified_splits(truth, splits=10, test_size=0.1, seed=42):
        in_train = np.zeros(len(score), dtype=bool)
        in_train[train] = True
        iso = isotonic_fit(score, truth, order[in_train[order]])
        held.append(truth[test])
        raw.append(score[test])
        fitted.append(iso(score[test]))
    y, before, after = np.concatenate(held), np.concatenate(raw), np.concatenate(fitted)
    return _ece(y, before, bins) > _ece(y, after, bins)


@dataclass(frozen=True)
class Calibrator:
    """Per-class isotonic maps fitted on the reference (None: that class kept as scored)."""

    maps: tuple[Isotonic | None, ...]
    binary: bool

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Return calibrated probabilities (rows x classes) for the model's ``proba``."""
        proba = np.asarray(proba, dtype=float)
        if self.binary:  # NannyML calibrates the positive class; the other is its complement
            p = self.positive(proba)
            return np.column_stack([1 - p, p])
        cols = [proba[:, j] if iso is None else iso(proba[:, j]) for j, iso in enumerate(self.maps)]
        out = np.column_stack(cols)
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1 / out.shape[1])
        renormalised: np.ndarray = np.divide(out, total, out=uniform, where=total != 0)
        return renormalised

    def positive(self, proba: np.ndarray) -> np.ndarray:
        """Return a binary model's calibrated positive-class column (``apply(proba)[:, 1]``).

        The negative class's is its complement: held as one column, a million rows' calibrated
        scores take 8 MB instead of 16, and the complement is spelled a window at a time.
        """
        iso = self.maps[1]
        column = np.asarray(proba[:, 1], dtype=float)  # a view of the scores, uncalibrated
        return column if iso is None else iso(column)

    @property
    def calibrated(self) -> list[bool]:
        """Which classes' scores are remapped."""
        return [m is not None for m in self.maps]


def fit_calibrator(yi: np.ndarray, proba: np.ndarray) -> Calibrator:
    """Fit the calibration on the reference: class indices ``yi`` and scores ``proba``."""
    k = proba.shape[1]
    binary = k == 2
    maps: list[Isotonic | None] = []
    for j in range(k):
        if binary and j == 0:
            maps.append(None)
            continue
        truth = (yi == j).astype(float)
        if not needs_calibration(truth, proba[:, j]):
            maps.append(None)
            continue
        maps.append(isotonic_fit(proba[:, j], truth))
    return Calibrator(tuple(maps), binary)
