"""Confidence-based performance estimation (NannyML's CBPE) for classifiers, without labels.

A calibrated score is the probability that a row belongs to its class, so summing the
calibrated probabilities of a window gives its *expected* confusion matrix, and every metric
built on the confusion matrix follows (NannyML's CBPE, reproduced here):

- the scores are calibrated on the reference first, each class one-vs-rest with isotonic
  regression, but only where calibration helps
  (:func:`lib.monitoring.cbpe_calibration.needs_calibration`: NannyML's test, the expected
  calibration error over 10 stratified 90/10 splits must fall); multiclass probabilities are
  then renormalised to sum to 1;
- accuracy, precision, recall and F1 (per class, then macro) come from the expected confusion
  matrix (truth ``a``, prediction ``b``: the sum over rows predicted ``b`` of the calibrated
  probability of ``a``);
- ROC AUC walks the rows in the order of the model's own scores, adding each row's calibrated
  probability to the true positives and its complement to the false positives (NannyML's
  ``estimate_roc_auc``, with its rounding), one-vs-rest and macro-averaged for multiclass;
- log loss (not in NannyML) is its expectation under the calibrated probabilities.

This holds while P(y|x) is unchanged (covariate shift); when the concept moves, the estimate
stays put and the realized metric leaves the estimate's band, which is the signal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any

import numpy as np
import pandas as pd

from lib.core.contracts import predlog
from lib.core.errors import DataValidationError
from lib.core.frames import Columns
from lib.core.logs import get_logger
from lib.core.windowspec import kept, take
from lib.data.drift_profile import code_dtype, stable_order
from lib.model.scoring import ranked_roc_aucs, roc_auc
from lib.monitoring.cbpe_calibration import fit_calibrator

log = get_logger(__name__)

CLASS_METRICS = (
    "roc_auc",
    "accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "log_loss",
)
BINARY_ONLY = ("f1", "precision", "recall")  # of the positive class (the second), as NannyML
_EPS = np.finfo(float).eps
Metrics = Callable[[slice | np.ndarray], dict[str, float]]  # rows -> {metric: value}
Side = tuple[np.ndarray, Metrics, Metrics]  # labelled (bool per row), estimate, realized
# sorted positions into the resampled reference rows -> their realized metrics (the bootstrap's)
Resample = Callable[[np.ndarray], dict[str, float]]


def estimate_roc_auc(calibrated: np.ndarray, score: np.ndarray) -> float:
    """Estimate ROC AUC: rows in descending model-score order, calibrated probabilities as TP.

    NannyML's algorithm, rounding included; NaN when the expected positives or negatives are 0.
    NannyML walks ``np.argsort(score)[::-1]``; the rows are sorted by bucket first here
    (:func:`lib.data.drift_profile.stable_order`, 1.3 against 2.4 ms for 50,000 scores), which
    orders tied scores otherwise. That changes nothing when tied scores have equal calibrated
    probabilities (a binary model's are a function of its score); else NannyML's order is used.
    """
    order = stable_order(-score)
    p = calibrated[order]
    ranked = score[order]
    tied = ranked[1:] == ranked[:-1]
    if tied.any() and (p[1:][tied] != p[:-1][tied]).any():
        order = np.argsort(score)[::-1]
        p = calibrated[order]
    hits = np.cumsum(p)
    tps = np.asarray(np.r_[0.0, hits], dtype=float).round(5)
    fps = np.asarray(np.r_[0.0, 1 + np.arange(len(p)) - hits], dtype=float).round(5)
    if tps[-1] <= 0 or fps[-1] <= 0:
        return float("nan")
    tpr, fpr = tps / tps[-1], fps / fps[-1]
    return float(np.trapezoid(tpr, fpr))


def _confusion_scores(
    tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray
) -> dict[str, np.ndarray]:
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    both = predicted + actual
    f1 = np.divide(2 * tp, both, out=np.zeros_like(tp), where=both > 0)
    return {"precision": precision, "recall": recall, "f1": f1}


def estimate(
    calibrated: np.ndarray, score: np.ndarray, pi: np.ndarray, metrics: tuple[str, ...]
) -> dict[str, float]:
    """Estimate ``metrics`` for one window without labels.

    Parameters
    ----------
    calibrated
        Calibrated probabilities (rows x classes).
    score
        The model's own probabilities (rows x classes): the ROC order and the log loss.
    pi
        The predicted classes as indices into the classes.
    metrics
        Names from :data:`CLASS_METRICS` (and :data:`BINARY_ONLY` for two classes).
    """
    n, k = calibrated.shape
    if n == 0:
        return dict.fromkeys(metrics, float("nan"))
    # expected hits per predicted class: each row's calibrated probability of its prediction
    tp = np.bincount(pi, weights=calibrated[np.arange(n), pi], minlength=k)
    predicted = np.bincount(pi, minlength=k).astype(float)
    actual = calibrated.sum(axis=0)  # expected rows of each true class
    per_class = _confusion_scores(tp, predicted, actual)
    seen = (predicted > 0) | (actual > 0)
    out: dict[str, float] = {}
    for name in metrics:
        counted = _from_confusion(name, tp, n, per_class, seen)
        if counted is not None:
            out[name] = counted
        elif name == "roc_auc":
            cols = [1] if k == 2 else range(k)
            aucs = [estimate_roc_auc(calibrated[:, j], score[:, j]) for j in cols]
            defined = [a for a in aucs if not np.isnan(a)]  # np.nanmean, without its warning
            out[name] = float(np.mean(defined)) if defined else float("nan")
        elif name == "log_loss":
            logs = np.log(np.clip(score, _EPS, 1 - _EPS))
            out[name] = float(-np.mean(np.sum(calibrated * logs, axis=1)))
    return out


def _from_confusion(
    name: str, tp: np.ndarray, n: int, per_class: dict[str, np.ndarray], seen: np.ndarray
) -> float | None:
    """Return a metric read off the (expected or realized) confusion counts; None: not one."""
    if name == "accuracy":
        return float(tp.sum() / n)
    if name.endswith("_macro"):
        return float(per_class[name.removesuffix("_macro")][seen].mean())
    if name in BINARY_ONLY:
        return float(per_class[name][1])
    return None


def realized(
    yi: np.ndarray, score: np.ndarray | None, pi: np.ndarray, k: int, metrics: tuple[str, ...]
) -> dict[str, float]:
    """Return the same metrics from labels (class indices ``yi``); NaN where undefined."""
    n = len(yi)
    if n == 0:
        return dict.fromkeys(metrics, float("nan"))
    # the confusion matrix (truth x prediction) in one count: the bootstrap calls this 200 times
    # (class indices are small integers: widened before they are combined)
    cells = yi.astype(np.intp) * k + pi
    confusion = np.bincount(cells, minlength=k * k).reshape(k, k).astype(float)
    return _counted(confusion, n, metrics, partial(_scored, yi, score, k))


def _counted(
    confusion: np.ndarray,
    n: int,
    metrics: tuple[str, ...],
    scored: Callable[[str, np.ndarray], float | None],
) -> dict[str, float]:
    """Return the metrics of ``n`` labelled rows from their confusion matrix (truth x prediction).

    ``scored(name, present)``: a metric the counts do not give (ROC AUC, log loss; None: not
    one), ``present`` being the classes the truth holds.
    """
    tp = np.diag(confusion).copy()
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    per_class = _confusion_scores(tp, predicted, actual)
    seen = (predicted > 0) | (actual > 0)  # scikit-learn's macro: classes in truth or predictions
    present = np.flatnonzero(actual > 0)
    out: dict[str, float] = {}
    for name in metrics:
        value = _from_confusion(name, tp, n, per_class, seen)
        value = scored(name, present) if value is None else value
        if value is not None:
            out[name] = value
    return out


def _scored(
    yi: np.ndarray, score: np.ndarray | None, k: int, name: str, present: np.ndarray
) -> float | None:
    """Return ROC AUC or log loss from the rows' scores (NaN without them); None: neither."""
    if name not in ("roc_auc", "log_loss"):
        return None
    if score is None:
        return float("nan")
    if name == "log_loss":
        chosen = np.clip(score[np.arange(len(yi)), yi], _EPS, 1 - _EPS)
        return float(-np.mean(np.log(chosen)))
    if len(present) < 2:
        return float("nan")
    if k == 2:
        return roc_auc(yi == 1, score[:, 1])
    return float(np.mean([roc_auc(yi == j, score[:, j]) for j in present]))


def _class_index(values: pd.Series, labels: pd.Index, what: str, side: str) -> np.ndarray:
    """Class indices of ``values`` (-1 where missing); an unknown class is an error."""
    # only the distinct values are matched to the classes (as objects, so 1 and 1.0 are one
    # class): matching a million values one by one took 0.1-0.26 s per column
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    matched = labels.get_indexer(pd.Index(np.asarray(uniques, dtype=object)))
    # the smallest integers that hold every class (and -1): on a million rows int8 instead of
    # int64 spares 7 MB per column, held while the per-window checks run side by side
    small = code_dtype(len(labels))
    index: np.ndarray = np.append(matched, -1).astype(small)[codes]  # code -1 stays -1
    bad = (index < 0) & values.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            f"{side}: {what} row {row + 1:,} is {str(values.iloc[row])!r}, not one of the model's "
            f"classes {list(labels)}; fix the value or monitor the model trained on that class",
            row=row + 1,
            column=what,
            check="unknown_class",
        )
    return index


def _scores(frame: Columns, classes: Sequence[Any]) -> np.ndarray | None:
    """Return the ``proba_<class>`` columns as a matrix, or None when any is absent."""
    names = [predlog.proba_column(c) for c in classes]
    if not all(n in frame.columns for n in names):
        return None
    # a column at a time into the matrix: a file's columns are then read one by one, and no
    # frame of them is held beside the matrix
    scores = np.empty((len(frame), len(names)))
    for j, name in enumerate(names):
        scores[:, j] = frame[name].to_numpy(float)
    return scores


def prepare(
    classes: Sequence[Any],
    ref: Columns,
    cur: Columns,
    target: str,
    metrics: tuple[str, ...],
) -> tuple[dict[str, Side], np.ndarray, Resample]:
    """Calibrate on the reference; return each period's metric functions over row positions.

    Returns
    -------
    dict, numpy.ndarray, callable
        ``{"reference" | "current": (labelled, estimate, realized)}`` (a bool per row, and
        functions of row positions), the reference rows the sampling error resamples, and the
        realized metrics of a sample of them (:func:`resampler`).
    """
    labels = pd.Index(list(classes))
    k = len(labels)
    ref_y = _class_index(ref[target], labels, target, "reference")
    ref_p = _class_index(ref[predlog.PREDICTION], labels, predlog.PREDICTION, "reference")
    cur_y = (
        _class_index(cur[target], labels, target, "current rows")
        if target in cur.columns
        else np.full(len(cur), -1, dtype=np.int8)
    )
    cur_p = _class_index(cur[predlog.PREDICTION], labels, predlog.PREDICTION, "current rows")
    ref_s, cur_s = _scores(ref, classes), _scores(cur, classes)
    fit_rows = np.flatnonzero((ref_y >= 0) & (ref_p >= 0))
    if ref_s is not None:
        fit_rows = fit_rows[np.isfinite(ref_s[fit_rows]).all(axis=1)]
    calibrator = None
    if ref_s is not None and cur_s is not None and len(fit_rows):
        calibrator = fit_calibrator(ref_y[fit_rows], ref_s[fit_rows])
        log.info("cbpe_calibration", classes=k, calibrated=calibrator.calibrated)
    else:
        log.info("cbpe_skipped", reason="no scores on the reference or the current rows")

    sides: dict[str, Side] = {}
    for period, y, p, s in (("reference", ref_y, ref_p, ref_s), ("current", cur_y, cur_p, cur_s)):
        cal = None
        if calibrator is not None and s is not None:
            # a binary model's calibrated scores as one column (see _class_estimate)
            cal = calibrator.positive(s) if calibrator.binary else calibrator.apply(s)
        sides[period] = (
            y >= 0,
            partial(_class_estimate, cal=cal, s=s, p=p, metrics=metrics),
            partial(_class_realized, y=y, p=p, s=s, k=k, metrics=metrics),
        )
    resample = resampler(ref_y[fit_rows], ref_p[fit_rows], ref_s, fit_rows, k, metrics)
    return sides, fit_rows, resample


def resampler(
    y: np.ndarray,
    p: np.ndarray,
    s: np.ndarray | None,
    rows: np.ndarray,
    k: int,
    metrics: tuple[str, ...],
) -> Resampler:
    """Return the realized metrics of ``rows[order][positions]`` for sorted ``positions``.

    The bootstrap of the sampling error calls it a few hundred times on samples of the same
    rows (labelled, predicted, scored: ``y`` and ``p`` are already theirs, ``s`` is every
    reference row's). Their scores are taken out once, so a sample reads a compact copy
    instead of the whole reference; a sample gets the numbers
    ``_class_realized(rows[order][positions])`` gives (tested), ``order`` being the
    resampler's ``order`` attribute. ``k``: the number of classes (the scores may be absent).

    A binary model's rows are held in the order of its score, highest first: the bootstrap
    draws its positions ascending (:func:`lib.monitoring.windows.sorted_draws`), so a
    sample's scores arrive sorted and its ROC AUC's sort has nothing to do (0.05 ms against
    0.8 for 20,000 scores). Other models keep row order (each class ranks its own score).
    """
    order = np.arange(len(rows))
    ss = None if s is None else take(s, rows)  # the resampled rows' scores, taken out once
    if ss is not None and k == 2 and "roc_auc" in metrics:
        order = stable_order(-ss[:, 1])  # np.argsort(..., kind="stable"), by bucket first
        ss = take(ss, order)
    return Resampler(order, y[order], p[order], ss, k, metrics)


@dataclass(frozen=True)
class Resampler:
    """The realized metrics of samples of the resampled rows (see :func:`resampler`)."""

    order: np.ndarray  # the resampled rows' order that positions index
    y: np.ndarray
    p: np.ndarray
    s: np.ndarray | None
    k: int
    metrics: tuple[str, ...]

    def __call__(self, at: np.ndarray) -> dict[str, float]:
        """Return the realized metrics of the rows at sorted positions ``at`` (in ``order``)."""
        s = None if self.s is None else take(self.s, at)
        return realized(self.y[at], s, self.p[at], self.k, self.metrics)

    @cached_property
    def _cells(self) -> np.ndarray:
        """Each row's cell of a binary confusion matrix: truth x 2 + prediction."""
        cells: np.ndarray = self.y.astype(np.int8) * 2 + self.p.astype(np.int8)
        return cells

    @cached_property
    def _positive(self) -> np.ndarray:
        """A binary model's positive scores, as one contiguous column."""
        assert self.s is not None
        return np.ascontiguousarray(self.s[:, 1])

    def batch(self, at: np.ndarray) -> list[dict[str, float]]:
        """Return ``[self(row) for row in at]``: the same numbers, samples taken together.

        A binary model's samples (rows of sorted positions, all of one size) are counted in one
        ``bincount`` and ranked in one pass (:func:`lib.model.scoring.ranked_roc_aucs`): the
        monitor bench's 200 samples of 20,000 rows took 0.13-0.14 instead of 0.20-0.22 s of CPU.
        Other models are taken a sample at a time.
        """
        if self.k != 2 or self.s is None or at.shape[1] == 0:
            return [self(row) for row in at]
        count, size = at.shape
        cells = self._cells[at].astype(np.intp)
        cells += 4 * np.arange(count)[:, None]
        confusion = np.bincount(cells.ravel(), minlength=4 * count).reshape(count, 2, 2)
        scores: dict[str, list[float]] = {}
        if "roc_auc" in self.metrics:  # the rows are in score order (see resampler)
            scores["roc_auc"] = ranked_roc_aucs(cells % 4 >= 2, self._positive[at])
        if "log_loss" in self.metrics:
            logs = np.log(np.clip(self.s[at, self.y[at]], _EPS, 1 - _EPS))
            scores["log_loss"] = [float(-np.mean(row)) for row in logs]

        def scored(r: int, name: str, present: np.ndarray) -> float | None:
            if name not in scores:
                return None
            return float("nan") if name == "roc_auc" and len(present) < 2 else scores[name][r]

        return [
            _counted(confusion[r].astype(float), size, self.metrics, partial(scored, r))
            for r in range(count)
        ]


def _class_realized(
    rows: slice | np.ndarray,
    *,
    y: np.ndarray,
    p: np.ndarray,
    s: np.ndarray | None,
    k: int,
    metrics: tuple[str, ...],
) -> dict[str, float]:
    yy, pp, ss = y[rows], p[rows], None if s is None else take(s, rows)
    keep = kept((yy >= 0) & (pp >= 0))
    return realized(yy[keep], None if ss is None else ss[keep], pp[keep], k, metrics)


def _class_estimate(
    rows: slice | np.ndarray,
    *,
    cal: np.ndarray | None,
    s: np.ndarray | None,
    p: np.ndarray,
    metrics: tuple[str, ...],
) -> dict[str, float]:
    if cal is None or s is None:
        return dict.fromkeys(metrics, float("nan"))
    cc, ss, pp = take(cal, rows), take(s, rows), p[rows]
    if cc.ndim == 1:  # a binary model's positive class: the negative one is its complement
        cc = np.column_stack([1 - cc, cc])
    keep = kept((pp >= 0) & np.isfinite(ss).all(axis=1))
    return estimate(cc[keep], ss[keep], pp[keep], metrics)
