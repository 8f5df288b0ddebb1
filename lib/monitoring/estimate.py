"""Performance per window, estimated without labels and realized where labels came back.

:func:`window_performance` fills ``window_performance.parquet``: for each window of the
reference (``period`` "reference") and of the current rows ("current") and each metric, the
label-free estimate (CBPE for classifiers, :mod:`lib.monitoring.estimate_cbpe`; DLE for
regression, :mod:`lib.monitoring.estimate_dle`), the realized value on the labelled rows,
each with its sampling-error band, and the metric's reference band.

Sampling error (NannyML's): the metric's standard deviation over bootstrap samples of the
labelled reference, scaled to a window as ``sd * sqrt(sample_rows / window_rows)``; a value's
band is value ± 3 standard errors, clipped to the metric's range (``estimated_lower/upper``
around the estimate, ``realized_lower/upper`` around the realized value, on its labelled rows).

Alert rule (every per-window check follows it): a window alerts when its value leaves the
reference band, the reference windows' realized mean ± ``sigmas`` standard deviations, clipped
to the metric's range (row windows: learned from at least 20 values, windows drawn with
replacement from the labelled reference rows topping them up, and the sd widened for the error
of the band's own centre, :func:`lib.monitoring.windows.centre_widening`), and only in the
harmful direction: a score (ROC AUC, accuracy, F1, precision, recall, R²) below the lower
bound, a loss (log loss, RMSE, MAE) above the upper one.
``alert_realized`` judges the realized value against that band (``lower``, ``upper``);
``alert_estimated`` judges the estimate against the band moved by the estimates' mean offset
from the realized values on the same reference windows (``lower_estimated``,
``upper_estimated``), which a model whose scores the reference cannot calibrate needs (see
:func:`_with_bands`). A bare point estimate is all there is to judge, and NaN never alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lib.core import tasks
from lib.core.contracts import predlog
from lib.core.errors import DataValidationError, ParamsError
from lib.core.frames import Columns
from lib.core.logs import get_logger
from lib.data.schema import Task
from lib.monitoring import estimate_cbpe as cbpe
from lib.monitoring import estimate_dle as dle
from lib.monitoring.windows import (
    DRAWN_ROWS,
    Window,
    centre_widening,
    drawn_windows,
    median_rows,
    reference_band,
    sorted_draws,
)

if TYPE_CHECKING:  # a type only: the inputs' module imports the ingest's (scikit-learn)
    from lib.monitoring.inputs import Current

log = get_logger(__name__)

COLUMNS = (
    "period",
    "window",
    "start",
    "end",
    "rows",
    "metric",
    "estimated",
    "estimated_lower",
    "estimated_upper",
    "realized",
    "realized_lower",
    "realized_upper",
    "labelled_rows",
    "lower",
    "upper",
    "lower_estimated",
    "upper_estimated",
    "alert_estimated",
    "alert_realized",
)
SUPPORTED: dict[Task, tuple[str, ...]] = {
    "binary": cbpe.CLASS_METRICS + cbpe.BINARY_ONLY,
    "multiclass": cbpe.CLASS_METRICS,
    "regression": dle.REGRESSION_METRICS,
}
DEFAULT: dict[Task, tuple[str, ...]] = {
    "binary": cbpe.CLASS_METRICS,
    "multiclass": cbpe.CLASS_METRICS,
    "regression": dle.REGRESSION_METRICS,
}
_SAMPLING_ERROR_RANGE = 3  # NannyML's: a value's band is ± 3 standard errors
_BATCH = 10  # bootstrap samples drawn and scored together (10 x 20,000 rows: a few MB)
_SAMPLE_CAP = 20_000  # bootstrap samples of at most this many rows (the SE scales by sqrt(n))
_LOSSES = frozenset({"log_loss", "rmse", "mae"})


def metric_limits(metric: str) -> tuple[float | None, float | None]:
    """Return the range a metric's values live in (None: unbounded on that side)."""
    if metric in _LOSSES:
        return 0.0, None
    if metric == "r2":
        return None, 1.0
    return 0.0, 1.0


def check_metrics(task: Task, metrics: Sequence[str] | None) -> tuple[str, ...]:
    """Return the metrics to compute (``None``: the task's default, headline metric first).

    Raises
    ------
    ParamsError
        Naming the metrics that cannot be estimated for ``task`` and the ones that can.
    """
    if metrics is None:
        chosen = DEFAULT[task]
        head = tasks.HEADLINE[task]
        return (head, *[m for m in chosen if m != head])
    unknown = [m for m in metrics if m not in SUPPORTED[task]]
    if unknown:
        raise ParamsError(
            f"performance estimation: {unknown} cannot be estimated for {task} models; use "
            f"any of {list(SUPPORTED[task])}",
            key="metrics",
        )
    return tuple(dict.fromkeys(metrics))


def current_frame(current: Current, target: str, classes: Sequence[Any] | None) -> pd.DataFrame:
    """Return the current side as one frame: features, ``prediction``, ``proba_<class>``, target.

    The target column holds the labels known (missing where none came back). The features are
    the current frame's own columns, not copies (the checks only read them): dropping and
    assigning copied them, 176 MiB held and 362 MiB at the peak for a million rows of 21
    columns, next to the frame itself.
    """
    extra: dict[str, Any] = {predlog.PREDICTION: current.pred}
    if current.proba is not None and classes is not None:
        for j, label in enumerate(classes):
            extra[predlog.proba_column(label)] = current.proba[:, j]
    extra[target] = current.y if current.y is not None else np.full(len(current.pred), None)
    frame = current.frame
    kept = {c: frame[c] for c in frame.columns if c not in extra}
    return pd.DataFrame({**kept, **extra}, index=frame.index, copy=False)


def _spread(
    fn: cbpe.Resample,
    rows: np.ndarray,
    metrics: tuple[str, ...],
    resamples: int,
    seed: int,
) -> tuple[dict[str, float], int]:
    """Each metric's sd over bootstrap samples of ``rows`` and the sample size it holds for.

    ``fn`` takes a sample's sorted positions into ``rows``.
    """
    size = min(len(rows), _SAMPLE_CAP)
    if size < 2 or resamples < 2:
        return dict.fromkeys(metrics, float("nan")), max(size, 1)
    rng = np.random.default_rng(seed)
    # each sample's positions ascending: the metrics do not depend on the order, reading 20,000
    # rows of a million in order instead of at random took the bootstrap from 4.0 to 2.3 ms a
    # sample (the reads missed the cache), and a classifier's resampled rows are held in score
    # order (:func:`lib.monitoring.estimate_cbpe.resampler`), so the sample's ROC AUC sorts
    # sorted scores
    batch = getattr(fn, "batch", None)  # samples taken together (the same numbers)
    draws: list[dict[str, float]] = []
    for done in range(0, resamples, _BATCH):
        at = sorted_draws(rng, len(rows), size, min(_BATCH, resamples - done))
        draws += batch(at) if batch is not None else [fn(row) for row in at]
    sd = {m: float(np.nanstd([d[m] for d in draws], ddof=1)) for m in metrics}
    return sd, size


def _band(value: float, se: float, metric: str) -> tuple[float, float]:
    lo_limit, hi_limit = metric_limits(metric)
    lo, hi = value - _SAMPLING_ERROR_RANGE * se, value + _SAMPLING_ERROR_RANGE * se
    return (
        lo if lo_limit is None else max(lo, lo_limit),
        hi if hi_limit is None else min(hi, hi_limit),
    )


def window_performance(
    task: Task,
    classes: Sequence[Any] | None,
    ref: Columns,
    cur: Columns,
    ref_windows: list[Window],
    cur_windows: list[Window],
    *,
    target: str,
    features: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    sigmas: float = 3.0,
    resamples: int = 100,
    seed: int = 0,
) -> pd.DataFrame:
    """Estimate (and, where labelled, measure) the model's performance per window.

    Parameters
    ----------
    task, classes
        The model's task and classes (in its ``proba_<class>`` order; None for regression).
    ref
        The reference: features, ``target``, ``prediction`` and (classification)
        ``proba_<class>`` columns.
    cur
        The current rows in the same layout (:func:`current_frame` builds it); the target
        column may be absent or partly missing (those rows count as unlabelled).
    ref_windows, cur_windows
        The windows of each side (:func:`lib.monitoring.windows.reference_windows`, ``split``).
    target
        The target column.
    features
        Regression: the nanny model's inputs (default: every column of ``ref`` but the target
        and the prediction log's own columns).
    metrics
        What to compute (default :data:`DEFAULT` of the task); :data:`SUPPORTED` lists the rest.
    sigmas
        Width of the reference band in the reference windows' standard deviations.
    resamples
        Bootstrap samples of the reference for the sampling error.
    seed
        Seed of the bootstrap and the nanny models.

    Returns
    -------
    pandas.DataFrame
        One row per (period, window, metric) with :data:`COLUMNS`: the estimate, the realized
        value and their ± 3 SE bands, the labelled rows, the reference band (``lower``,
        ``upper``: a score keeps only ``lower``, a loss only ``upper``) and the alerts (see the
        module's alert rule).

    Raises
    ------
    DataValidationError
        When the reference lacks the target or prediction column, a regression feature is
        missing from the current rows, or a label or prediction is not one of the classes.
    ParamsError
        When a metric cannot be computed for the task.
    """
    chosen = check_metrics(task, metrics)
    for name in (target, predlog.PREDICTION):
        if name not in ref.columns:
            raise DataValidationError(
                f"reference: column {name!r} is missing; performance estimation needs the "
                "reference's truth and predictions (rerun the evaluate stage to save them)",
                column=name,
                check="missing_columns",
            )
    if predlog.PREDICTION not in cur.columns:
        raise DataValidationError(
            f"current rows: column {predlog.PREDICTION!r} is missing; score the rows first",
            column=predlog.PREDICTION,
            check="missing_columns",
        )
    if task == "regression":
        sides, resampled, resample = dle.prepare(ref, cur, target, features, chosen, seed)
    else:
        sides, resampled, resample = cbpe.prepare(classes or [], ref, cur, target, chosen)
    realized = sides["reference"][2]
    sd, size = _spread(resample, resampled, chosen, resamples, seed)
    values = []
    for period, windows in (("reference", ref_windows), ("current", cur_windows)):
        values += _rows(period, windows, sides[period], sd, size, chosen)
    frame = pd.DataFrame(values, columns=list(COLUMNS[:13]))
    # a band of row windows learns from at least 20 values (windows drawn from the labelled
    # reference rows) and is widened for its centre's own error, as drift's and multivariate's
    window = median_rows(cur_windows)
    extra = drawn_windows(ref_windows, resampled, window, seed=seed + 1, max_rows=DRAWN_ROWS)
    estimated = sides["reference"][1]
    drawn = [(realized(rows), estimated(rows)) for rows in extra]
    widen = centre_widening(ref_windows, window, len(resampled))
    return _with_bands(frame, chosen, sigmas * widen, drawn)


def _rows(
    period: str,
    windows: list[Window],
    side: cbpe.Side,
    sd: dict[str, float],
    size: int,
    metrics: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Return one row per window and metric: estimate, realized value and their bands."""
    out = []
    nan = float("nan")
    is_labelled, estimate, realized = side
    for w in windows:
        est, real = estimate(w.rows_taken), realized(w.rows_taken)
        labelled = int(is_labelled[w.rows_taken].sum())
        for m in metrics:
            e, r = est.get(m, nan), real.get(m, nan)
            e_lo, e_hi = _band(e, sd[m] * np.sqrt(size / w.rows), m) if w.rows else (nan, nan)
            r_lo, r_hi = _band(r, sd[m] * np.sqrt(size / labelled), m) if labelled else (nan, nan)
            out.append(
                {
                    "period": period,
                    "window": w.key,
                    "start": pd.NaT if w.start is None else w.start,
                    "end": pd.NaT if w.end is None else w.end,
                    "rows": w.rows,
                    "metric": m,
                    "estimated": e,
                    "estimated_lower": e_lo,
                    "estimated_upper": e_hi,
                    "realized": r,
                    "realized_lower": r_lo,
                    "realized_upper": r_hi,
                    "labelled_rows": labelled,
                }
            )
    return out


def _with_bands(
    frame: pd.DataFrame,
    metrics: tuple[str, ...],
    sigmas: float,
    drawn: Sequence[tuple[dict[str, float], dict[str, float]]] = (),
) -> pd.DataFrame:
    """Add each metric's reference bands and the alerts (wrong direction only).

    The band (``lower``, ``upper``) is learned from the realized values of the reference
    windows and of the ``drawn`` ones (``(realized, estimated)`` per window, not shown). Its sd
    is at least the estimates' over those windows: a window's realized value varies around its
    expected one, the estimate, so (law of total variance) its spread is never below the
    estimates'. A small reference holding one or two errors of a near-perfect model realizes
    about 1.0 in every drawn window, a spread far too narrow: on breast cancer (88 reference
    rows, nothing shifted, 20 splits) the floor took realized alerts from 22 % of windows to 5 %.

    The estimate is judged against the same band moved by how far the estimates sat from the
    realized values on those same windows (``lower_estimated``, ``upper_estimated``): where the
    model's scores are not calibrated and the reference is too small to calibrate them, the
    estimate is off by about as much on every window, and judged against the realized band it
    alerted on windows where nothing changed (wine, a logistic model, 88 reference rows, 20
    splits: 29 % of windows). Calibrated, the two bands all but coincide (NannyML judges the
    estimate against the realized band).
    """
    frame = frame.assign(
        lower=np.nan, upper=np.nan, lower_estimated=np.nan, upper_estimated=np.nan,
        alert_estimated=False, alert_realized=False,
    )  # fmt: skip
    reference = frame["period"] == "reference"
    for m in metrics:
        at = frame["metric"] == m
        realized = np.append(
            frame.loc[at & reference, "realized"].to_numpy(float),
            [real.get(m, np.nan) for real, _ in drawn],
        )
        estimated = np.append(
            frame.loc[at & reference, "estimated"].to_numpy(float),
            [est.get(m, np.nan) for _, est in drawn],
        )
        known = estimated[np.isfinite(estimated)]
        paired = np.isfinite(realized) & np.isfinite(estimated)
        offset = float(np.mean(estimated[paired] - realized[paired])) if paired.any() else 0.0
        lo_limit, hi_limit = metric_limits(m)
        bands = [
            reference_band(
                realized + shift,
                sigmas=sigmas,
                lower_limit=lo_limit,
                upper_limit=hi_limit,
                side="upper" if m in _LOSSES else "lower",
                sd_floor=float(known.std()) if len(known) > 1 else 0.0,
            )
            for shift in (0.0, offset)
        ]
        for band, suffix, value in zip(
            bands, ("", "_estimated"), ("realized", "estimated"), strict=True
        ):
            frame.loc[at, f"lower{suffix}"] = np.nan if band.lower is None else band.lower
            frame.loc[at, f"upper{suffix}"] = np.nan if band.upper is None else band.upper
            frame.loc[at, f"alert_{value}"] = [band.alerts(v) for v in frame.loc[at, value]]
    return frame[list(COLUMNS)].astype({"alert_estimated": bool, "alert_realized": bool})
