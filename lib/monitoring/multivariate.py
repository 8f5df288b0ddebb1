"""Multivariate drift per window: NannyML's data reconstruction error with PCA.

Fitted on the whole reference, in NannyML's order: missing values imputed (numeric columns with
the mean, categorical ones with the most frequent category), categories frequency-encoded (each
replaced by its share of the reference; a category the reference never saw becomes 0), every
column standardised to mean 0 and unit variance, and a PCA keeping the fewest components that
explain 65 % of the variance. A row's reconstruction error is the Euclidean distance between
its prepared values and their PCA reconstruction (compress, then decompress); a window's value
is the mean over its rows. A change in the joint structure (a correlation flipping sign, say)
raises it even where every column on its own looks unchanged.

Alert rule: the reference windows give the band, mean +- ``sigmas`` standard deviations
(clipped at 0, as an error is never negative); a window alerts when its value leaves the band,
on either side as NannyML does (a window that reconstructs *better* than any reference window
is unusual too). Unlike NannyML, the preparation and the PCA are fitted on a random half of the
reference (:func:`halves`) and every value the band and the windows show comes from rows the
PCA was not fitted on, all under that one PCA; row-window bands are topped up to 20 values with
windows drawn from the held-out rows (:func:`_drawn`). A reference under 200 rows has no half
to spare: each of its rows is scored by a PCA fitted without its fold (:func:`out_of_fold`) and
the current rows by the PCA of every row. A row-window band is also widened for the error of its
own centre, a mean over few reference rows when the table is small
(:func:`lib.monitoring.windows.centre_widening`).

Where this differs from NannyML (``DataReconstructionDriftCalculator``): the band's standard
deviation is the population one (ddof 0, shared by every per-window band here; NannyML's pandas
``std`` uses ddof 1, a band wider by a factor sqrt(n / (n - 1))); the PCA is fitted from the
covariance matrix's eigenvectors (exact and deterministic, and on a million rows seconds faster
than a full SVD; NannyML's ``auto`` solver may pick a randomised one on large data); a
category unseen in the reference is encoded as share 0 explicitly; and no sampling-error band is
drawn around each window's value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib.core.errors import DataValidationError
from lib.core.frames import Columns, ParquetColumns
from lib.core.logs import get_logger
from lib.data.drift_profile import Kind, numeric_values
from lib.monitoring.multivariate_prepare import (
    category_lookup,
    encoded,
    fill_missing,
    learn_column,
    learn_numeric,
    take_into,
)
from lib.monitoring.windows import (
    META,
    Window,
    centre_widening,
    drawn_windows,
    median_rows,
    reference_band,
    window_meta,
)

log = get_logger(__name__)

METHOD = "pca_reconstruction"
COLUMNS = [*META, "method", "value", "lower", "upper", "alert"]
VARIANCE = 0.65  # NannyML's default share of the variance the components keep
_BLOCK = 50_000  # rows reconstructed at once (100,000 before: from files, 510 -> 465 MiB peak)


def _blocks(
    frame: Columns, names: list[str], rows: np.ndarray | None = None
) -> Iterator[pd.DataFrame]:
    """Yield ``frame``'s ``names`` (its ``rows``, sorted positions, when given) in blocks."""
    if isinstance(frame, ParquetColumns):
        yield from frame.blocks(names, _BLOCK, rows)
        return
    n = len(frame) if rows is None else len(rows)
    for lo in range(0, n, _BLOCK):
        yield frame.iloc[lo : lo + _BLOCK] if rows is None else frame.iloc[rows[lo : lo + _BLOCK]]


@dataclass(frozen=True)
class Reconstruction:
    """The preparation and PCA learned on the reference (attributes as scikit-learn's)."""

    kinds: dict[str, Kind]
    fill_: dict[str, float | str]  # column -> the value a missing one takes
    shares_: dict[str, dict[str, float]]  # categorical column -> category -> reference share
    mean_: np.ndarray
    scale_: np.ndarray
    components_: np.ndarray  # components x columns, orthonormal rows
    centre_: np.ndarray  # the prepared reference's column means (0 up to rounding)
    # category column -> its categories and their shares by code, as last looked up
    _lookups: dict[str, tuple[pd.Index, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def n_components_(self) -> int:
        """How many components are kept."""
        return int(self.components_.shape[0])

    def prepare(self, frame: pd.DataFrame) -> np.ndarray:
        """Impute, frequency-encode and standardise ``frame`` as on the reference."""
        # column-major: each column is written (and standardised in place) as one contiguous run
        prepared = np.empty((len(frame), len(self.kinds)), order="F")
        for j, (name, kind) in enumerate(self.kinds.items()):
            column = prepared[:, j]
            self._column(frame[name], name, kind, out=column)
            column -= self.mean_[j]
            column /= self.scale_[j]
        return prepared

    def _column(
        self, values: pd.Series, name: str, kind: Kind, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Return one column imputed and encoded, not yet standardised (into ``out``, if given)."""
        shares = self.shares_.get(name)
        if kind == "numeric" or not isinstance(values.dtype, pd.CategoricalDtype):
            return encoded(values, kind, self.fill_[name], shares, out)
        # a category column's blocks share its categories: their shares are looked up once
        # (spelling them for each of the bench's 43 blocks x 5 columns took 0.15 s)
        categories = values.cat.categories
        known = self._lookups.get(name)
        if known is None or not known[0].equals(categories):
            known = (categories, category_lookup(categories, self.fill_[name], shares or {}))
            self._lookups[name] = known
        out = np.empty(len(values)) if out is None else out
        return take_into(known[1], values.cat.codes.to_numpy(), out)

    def errors(self, frame: Columns, rows: np.ndarray | None = None) -> np.ndarray:
        """Return each row's (of ``rows``, positions, when given) distance to its reconstruction.

        Prepared a block of rows at a time: a million rows never exist as one float matrix (nor
        a copy of the rows asked for).
        """
        out = np.empty(len(frame) if rows is None else len(rows))
        lo = 0
        for block in _blocks(frame, list(self.kinds), rows):
            out[lo : lo + len(block)] = self._errors(self.prepare(block))
            lo += len(block)
        return out

    def _errors(self, x: np.ndarray) -> np.ndarray:
        """Return each row's distance to its reconstruction, without building it.

        ``x`` is a block prepared for this call: it is centred in place (a copy of the block
        less at the peak).

        The components are orthonormal, so for a centred row ``c`` and its projection ``z``
        ``|c - reconstruction|^2 = |c|^2 - |z|^2`` (clipped at 0 against rounding).
        """
        x -= self.centre_  # a fresh block of the caller's: no copy
        z = x @ self.components_.T
        squared = np.einsum("ij,ij->i", x, x) - np.einsum("ij,ij->i", z, z)
        distance: np.ndarray = np.sqrt(np.maximum(squared, 0.0))
        return distance


def fit_reconstruction(
    reference: Columns,
    kinds: Mapping[str, Kind],
    variance: float = VARIANCE,
    rows: np.ndarray | None = None,
) -> Reconstruction:
    """Learn the preparation and the PCA on the reference rows (``rows``, positions, if given).

    One column at a time for the imputation, the encoding and the scaling; then a block of rows
    at a time for the covariance matrix, whose eigenvectors are the components (scikit-learn's
    ``PCA(svd_solver="covariance_eigh")`` computes the same from the whole matrix at once; here
    the prepared reference, 80 MB for 500,000 rows x 20 columns, never exists whole).

    Raises
    ------
    DataValidationError
        When a column has no present value in the reference.
    """
    fill: dict[str, float | str] = {}
    shares: dict[str, dict[str, float]] = {}
    mean, scale = np.zeros(len(kinds)), np.ones(len(kinds))
    for j, (name, kind) in enumerate(kinds.items()):
        values = reference[name] if rows is None else reference[name].iloc[rows]
        learn_column(values, name, kind, fill, shares, mean, scale, j)
    scaled = Reconstruction(
        dict(kinds), fill, shares, mean, scale, np.empty((0, len(kinds))), np.zeros(len(kinds))
    )
    components, centre = _components(scaled, reference, variance, rows)
    return Reconstruction(dict(kinds), fill, shares, mean, scale, components, centre)


MATRIX_BYTES = 128 << 20  # the two halves of a reference held as matrices up to this size


def fit_and_score(
    reference: Columns,
    kinds: Mapping[str, Kind],
    fit: np.ndarray,
    held: np.ndarray,
    variance: float = VARIANCE,
) -> tuple[Reconstruction, np.ndarray]:
    """Fit on the reference rows ``fit``; return the model and the errors of the rows ``held``.

    Both halves prepared as matrices a column at a time, each column read once: the covariance
    and the held rows' errors then need no stream of the reference's rows. Streamed twice
    instead (:func:`fit_reconstruction`, then :meth:`Reconstruction.errors`), the monitor
    bench's 500,000 reference rows took 0.33 s more (each stream decodes the 20 columns again).
    Above ``MATRIX_BYTES`` for the two matrices (80 MB on the bench) the rows are streamed,
    so a large reference is never held whole. The same model and errors either way (the
    covariance summed in another order: equal to about 1e-12, tested).
    """
    k = len(kinds)
    if (len(fit) + len(held)) * k * 8 > MATRIX_BYTES:
        model = fit_reconstruction(reference, kinds, variance, rows=fit)
        return model, model.errors(reference, held)
    fill: dict[str, float | str] = {}
    shares: dict[str, dict[str, float]] = {}
    mean, scale = np.zeros(k), np.ones(k)
    fitted, scored = np.empty((len(fit), k), order="F"), np.empty((len(held), k), order="F")
    for j, (name, kind) in enumerate(kinds.items()):
        values = reference[name]
        column = scored[:, j]  # prepared as Reconstruction.prepare does
        if kind == "numeric":  # each half's rows taken straight into its matrix
            x = numeric_values(values)  # a float64 column as it is, not copied
            learn_numeric(take_into(x, fit, fitted[:, j]), name, fill, mean, scale, j)
            fill_missing(take_into(x, held, column), fill[name])
        else:
            fitted[:, j] = learn_column(values.iloc[fit], name, kind, fill, shares, mean, scale, j)
            encoded(values.iloc[held], kind, fill[name], shares.get(name), out=column)
        column -= mean[j]
        column /= scale[j]
    components, centre = _eigen(fitted.T @ fitted, fitted.sum(axis=0), len(fitted), variance)
    del fitted
    model = Reconstruction(dict(kinds), fill, shares, mean, scale, components, centre)
    return model, model._errors(scored)


def _components(
    scaled: Reconstruction, reference: Columns, variance: float, rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Return the components keeping ``variance`` of the prepared reference, and its means.

    The components are the covariance's eigenvectors, the fewest whose eigenvalues add up to
    the share; the covariance is accumulated a block of rows at a time.
    """
    k = len(scaled.kinds)
    gram, total, n = np.zeros((k, k)), np.zeros(k), 0
    for block in _blocks(reference, list(scaled.kinds), rows):
        x = scaled.prepare(block)
        gram += x.T @ x
        total += x.sum(axis=0)
        n += len(x)
    return _eigen(gram, total, n, variance)


def _eigen(
    gram: np.ndarray, total: np.ndarray, n: int, variance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the components keeping ``variance`` from ``n`` rows' Gram matrix and sums."""
    k = len(total)
    centre = total / n
    covariance = (gram - n * np.outer(centre, centre)) / max(n - 1, 1)
    values, vectors = np.linalg.eigh(covariance)  # ascending
    values, vectors = np.maximum(values[::-1], 0.0), vectors[:, ::-1]
    if values.sum() <= 0:  # every column constant: nothing to reconstruct
        return vectors[:, :1].T, centre
    ratio = np.cumsum(values / values.sum())
    # as scikit-learn picks a float n_components: the first count reaching the share
    kept = min(int(np.searchsorted(ratio, variance, side="right")) + 1, k)
    return vectors[:, :kept].T.copy(), centre


def multivariate_drift(
    reference: Columns,
    current: Columns,
    kinds: Mapping[str, Kind],
    ref_windows: Sequence[Window],
    cur_windows: Sequence[Window],
    sigmas: float = 3.0,
) -> pd.DataFrame:
    """Mean reconstruction error per window of each side, and its alert (see the module doc).

    Parameters
    ----------
    reference, current
        The two sides' rows; the windows index into them by position.
    kinds
        The feature columns -> ``numeric`` or ``categorical`` (at least two columns).
    ref_windows, cur_windows
        The windows of each side.
    sigmas
        Width of the band in reference-window standard deviations (``monitor.sigmas``).

    Returns
    -------
    pandas.DataFrame
        ``period, window, start, end, rows, method, value, lower, upper, alert``; empty when
        fewer than two columns are given (one column is its own principal component).
    """
    absent = [(s, c) for s, f in (("reference", reference), ("current", current))
              for c in kinds if c not in f.columns]  # fmt: skip
    if absent:
        side, column = absent[0]
        raise DataValidationError(
            f"{side} data: column {column!r} is missing; both sides must hold every monitored "
            "column (or exclude it in monitor.exclude)",
            column=column,
        )
    if len(kinds) < 2:
        log.warning("multivariate_skipped", columns=len(kinds), reason="needs two columns")
        return pd.DataFrame(columns=COLUMNS).astype({"alert": bool})
    if len(reference) < CROSS_FIT_MIN:
        # too few rows to spare half: every row is scored by a PCA fitted on the other folds
        model = fit_reconstruction(reference, kinds)
        ref_errors = held_errors = out_of_fold(reference, kinds)
    else:
        fit, held = halves(len(reference))
        model, held_errors = fit_and_score(reference, kinds, fit, held)
        ref_errors = np.full(len(reference), np.nan)  # only the rows the PCA was not fitted on
        ref_errors[held] = held_errors
    cur_errors = model.errors(current)
    values = {
        "reference": [_mean(ref_errors[w.rows_taken]) for w in ref_windows],
        "current": [_mean(cur_errors[w.rows_taken]) for w in cur_windows],
    }
    size = median_rows(cur_windows)
    drawn = _drawn(held_errors, ref_windows, size)
    widen = centre_widening(ref_windows, size, len(held_errors))
    band = reference_band([*values["reference"], *drawn], sigmas=sigmas * widen, lower_limit=0.0)
    rows = [
        {
            **window_meta(period, w),
            "method": METHOD,
            "value": v,
            "lower": np.nan if band.lower is None else band.lower,
            "upper": np.nan if band.upper is None else band.upper,
            "alert": band.alerts(v),
        }
        for period, windows in (("reference", ref_windows), ("current", cur_windows))
        for w, v in zip(windows, values[period], strict=True)
    ]
    out = pd.DataFrame(rows, columns=COLUMNS).astype({"alert": bool, "rows": "int64"})
    log.info(
        "multivariate_drift",
        components=model.n_components_,
        alerts=int(out.loc[out["period"] == "current", "alert"].sum()),
    )
    return out


CROSS_FIT_MIN = 200  # reference rows from which the PCA is fitted on half of them


def halves(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the reference positions the PCA is fitted on and those held out (seeded halves).

    Fitted on every row (NannyML), the PCA has seen the reference windows' own rows, so they
    reconstruct better than new rows do and the band sits too low: on statsmodels' randhie split
    at random, with nothing shifted, 20 % of current windows alerted. Below ``CROSS_FIT_MIN``
    rows there is no half to spare (:func:`multivariate_drift` scores them :func:`out_of_fold`).
    """
    order = np.random.default_rng(0).permutation(n_rows)
    # marked off rather than sorted: the same positions, 5 against 27 ms for 500,000 rows
    fit = np.zeros(n_rows, dtype=bool)
    fit[order[: n_rows // 2]] = True
    return np.flatnonzero(fit), np.flatnonzero(~fit)


FOLDS = 5  # below CROSS_FIT_MIN rows: each reference row scored by a PCA of the other 4 folds


def out_of_fold(reference: Columns, kinds: Mapping[str, Kind]) -> np.ndarray:
    """Return each reference row's error under a PCA fitted without its fold (seeded folds).

    Below ``CROSS_FIT_MIN`` rows (a small table's test split), fitted on every row, the PCA had
    seen the reference windows' rows and the band sat too low: on four real tables split at
    random with nothing shifted (scikit-learn's diabetes, wine, breast cancer; statsmodels'
    randhie; 88 reference rows, 5 current windows) 17-34 % of current windows alerted, in 50-75 %
    of runs. The current rows are scored by the PCA of every reference row.
    """
    n = len(reference)
    errors = np.empty(n)
    for drawn in np.array_split(np.random.default_rng(0).permutation(n), min(FOLDS, n)):
        fold = np.sort(drawn)  # rows in order: a file is streamed in its own order
        rest = np.setdiff1d(np.arange(n), fold)
        model = fit_reconstruction(reference, kinds, rows=rest if len(rest) else fold)
        errors[fold] = model.errors(reference, fold)
    return errors


def _drawn(held_errors: np.ndarray, ref_windows: Sequence[Window], size: int) -> list[float]:
    """Return the extra band values of row windows: mean errors of ``size`` held-out rows.

    Drawn with replacement (:func:`lib.monitoring.windows.drawn_windows`): without it,
    overlapping draws from half the rows understate the spread (12 % chance alerts on randhie
    instead of 1-2 %).
    """
    rows = np.arange(len(held_errors))
    return [float(held_errors[i].mean()) for i in drawn_windows(ref_windows, rows, size, seed=1)]


def _mean(errors: np.ndarray) -> float:
    """Mean of the errors known (NaN where the row was fitted on, or none is)."""
    known = errors[np.isfinite(errors)]
    return float(known.mean()) if len(known) else float("nan")
