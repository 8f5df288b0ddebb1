"""Direct loss estimation (NannyML's DLE) for regression models, without labels.

A regression model's loss can be computed row by row, so a second model (the *nanny*) learns
it: on the reference, a gradient-boosted regressor (scikit-learn's
``HistGradientBoostingRegressor``; NannyML uses LightGBM) is fitted on the features plus the
model's prediction to predict the absolute error and, separately, the squared error. A
window's estimated MAE is the mean of its predicted absolute errors, its RMSE the square root
of the mean predicted squared error. NannyML estimates the reference's own windows with the
nanny fitted on all of them (in-sample, so too good); here they are estimated out-of-fold
(each reference row by a nanny that never saw it), so the reference windows' spread is honest.

R² (not in NannyML) needs the variance of the truth, unknown without labels: it is estimated
as the variance of the predictions plus the estimated MSE, which holds when the errors are
uncorrelated with the predictions (a calibrated regressor's are), so
``r2 = 1 - mse / (var(prediction) + mse)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lib.core.contracts import predlog
from lib.core.errors import DataValidationError
from lib.core.frames import Columns
from lib.core.logs import get_logger
from lib.core.windowspec import kept

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingRegressor

log = get_logger(__name__)

REGRESSION_METRICS = ("rmse", "mae", "r2")
_LOSSES = ("abs", "sq")
_MAX_CATEGORIES = 250
Metrics = Callable[[slice | np.ndarray], dict[str, float]]  # rows -> {metric: value}
Side = tuple[np.ndarray, Metrics, Metrics]  # labelled (bool per row), estimate, realized
Resample = Callable[[np.ndarray], dict[str, float]]  # positions into the resampled rows


def nanny_inputs(
    frame: Columns, features: Sequence[str], pred: np.ndarray, reference: Columns
) -> pd.DataFrame:
    """Return the nanny's inputs: numeric features as numbers, the rest as categories.

    Categories are the reference's most frequent 250 (any other is missing); dates become
    numbers (seconds).
    """
    out: dict[str, Any] = {}
    for name in features:
        col, ref = frame[name], reference[name]
        if pd.api.types.is_bool_dtype(ref) or not (
            pd.api.types.is_numeric_dtype(ref) or pd.api.types.is_datetime64_any_dtype(ref)
        ):
            # the boosting takes at most 255 bins a column: the most frequent categories
            cats = ref.dropna().astype(str).value_counts().index[:_MAX_CATEGORIES]
            out[name] = pd.Categorical(col.astype(str).where(col.notna()), categories=cats)
        elif pd.api.types.is_datetime64_any_dtype(ref):
            stamps = pd.to_datetime(col, errors="coerce", utc=True)
            out[name] = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        else:
            out[name] = pd.to_numeric(col, errors="coerce").astype(float)
    out["prediction"] = np.asarray(pred, dtype=float)
    return pd.DataFrame(out)


def _nanny(seed: int) -> HistGradientBoostingRegressor:
    # scikit-learn is imported by a regression's monitor only (not by every monitor's checks)
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        categorical_features="from_dtype",
        max_iter=100,
        early_stopping=True,
        random_state=seed,
    )


@dataclass(frozen=True)
class LossModel:
    """The nannies fitted on the whole reference, and the reference's out-of-fold losses."""

    models: dict[str, HistGradientBoostingRegressor]
    reference_losses: dict[str, np.ndarray]  # per reference row, NaN where it had no label

    def predict(self, inputs: pd.DataFrame) -> dict[str, np.ndarray]:
        """Predicted absolute and squared errors per row (never negative)."""
        return {k: np.clip(m.predict(inputs), 0, None) for k, m in self.models.items()}


def fit_loss_model(
    inputs: pd.DataFrame,
    errors: np.ndarray,
    *,
    folds: int = 3,
    fit_rows: int = 100_000,
    seed: int = 0,
) -> LossModel:
    """Fit the nannies on the labelled reference rows; estimate those rows out-of-fold.

    Parameters
    ----------
    inputs
        :func:`nanny_inputs` of the reference.
    errors
        ``y - prediction`` per reference row (NaN: no label).
    folds
        Cross-fitting folds for the reference's own estimates.
    fit_rows
        At most this many labelled rows fit each nanny (a random sample beyond it).
    seed
        Seed of the folds, the sample and the boosting.
    """
    known = np.flatnonzero(np.isfinite(errors))
    rng = np.random.default_rng(seed)
    targets = {"abs": np.abs(errors), "sq": errors**2}
    oof = {k: np.full(len(errors), np.nan) for k in _LOSSES}
    from sklearn.model_selection import KFold

    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(known):
        rows, held = known[train], known[test]
        if len(rows) > fit_rows:
            rows = rng.choice(rows, fit_rows, replace=False)
        for k in _LOSSES:
            model = _nanny(seed).fit(inputs.iloc[rows], targets[k][rows])
            oof[k][held] = np.clip(model.predict(inputs.iloc[held]), 0, None)
    rows = known if len(known) <= fit_rows else rng.choice(known, fit_rows, replace=False)
    models = {k: _nanny(seed).fit(inputs.iloc[rows], targets[k][rows]) for k in _LOSSES}
    return LossModel(models, oof)


def estimate(
    losses: dict[str, np.ndarray], pred: np.ndarray, metrics: tuple[str, ...]
) -> dict[str, float]:
    """Estimate ``metrics`` of one window from its rows' predicted losses."""
    nan = float("nan")
    ok = np.isfinite(losses["abs"]) & np.isfinite(losses["sq"])
    if not ok.any():
        return dict.fromkeys(metrics, nan)
    mse = float(np.mean(losses["sq"][ok]))
    spread = float(np.var(np.asarray(pred, dtype=float)[ok]))
    values = {
        "mae": float(np.mean(losses["abs"][ok])),
        "rmse": float(np.sqrt(mse)),
        "r2": 1 - mse / (spread + mse) if spread + mse > 0 else nan,
    }
    return {m: values[m] for m in metrics}


def realized(y: np.ndarray, pred: np.ndarray, metrics: tuple[str, ...]) -> dict[str, float]:
    """RMSE, MAE and R² from labels (NaN where undefined, R² with constant truth)."""
    nan = float("nan")
    if len(y) == 0:
        return dict.fromkeys(metrics, nan)
    err = y - pred
    total = float(np.sum((y - y.mean()) ** 2))
    values = {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1 - np.sum(err**2) / total) if total > 0 else nan,
    }
    return {m: values[m] for m in metrics}


def _features(ref: Columns, target: str, features: Sequence[str] | None) -> list[str]:
    if features is not None:
        return list(features)
    return [
        c
        for c in ref.columns
        if c != target and not predlog.is_log_column(str(c)) and c not in predlog.KEY
    ]


def prepare(
    ref: Columns,
    cur: Columns,
    target: str,
    features: Sequence[str] | None,
    metrics: tuple[str, ...],
    seed: int,
) -> tuple[dict[str, Side], np.ndarray, Resample]:
    """Fit the nannies; return each period's metric functions over row positions.

    Returns
    -------
    dict, numpy.ndarray, callable
        ``{"reference" | "current": (labelled, estimate, realized)}`` (a bool per row, and
        functions of row positions), the reference rows the sampling error resamples, and the
        realized metrics of ``rows[positions]``.

    Raises
    ------
    DataValidationError
        When a feature is missing from either side.
    """
    names = _features(ref, target, features)
    missing = [n for n in names if n not in cur.columns or n not in ref.columns]
    if missing:
        raise DataValidationError(
            f"current rows: features {missing} are missing; direct loss estimation needs the "
            f"features the reference has ({names})",
            column=missing[0],
            check="missing_columns",
        )
    ref_pred = pd.to_numeric(ref[predlog.PREDICTION], errors="coerce").to_numpy(float)
    cur_pred = pd.to_numeric(cur[predlog.PREDICTION], errors="coerce").to_numpy(float)
    ref_y = pd.to_numeric(ref[target], errors="coerce").to_numpy(float)
    cur_y = (
        pd.to_numeric(cur[target], errors="coerce").to_numpy(float)
        if target in cur.columns
        else np.full(len(cur), np.nan)
    )
    ref_x = nanny_inputs(ref, names, ref_pred, ref)
    cur_x = nanny_inputs(cur, names, cur_pred, ref)
    errors = ref_y - ref_pred
    known = np.flatnonzero(np.isfinite(errors))
    ref_loss: dict[str, np.ndarray] | None = None
    cur_loss: dict[str, np.ndarray] | None = None
    if len(known) >= 20:  # too few labelled rows teach a nanny nothing
        nanny = fit_loss_model(ref_x, errors, seed=seed)
        ref_loss, cur_loss = nanny.reference_losses, nanny.predict(cur_x)
        log.info("dle_fitted", reference_rows=len(known), features=len(names))

    sides: dict[str, Side] = {}
    for period, y, pred, loss in (
        ("reference", ref_y, ref_pred, ref_loss),
        ("current", cur_y, cur_pred, cur_loss),
    ):
        sides[period] = (
            np.isfinite(y) & np.isfinite(pred),
            partial(_reg_estimate, loss=loss, p=pred, metrics=metrics),
            partial(_reg_realized, y=y, p=pred, metrics=metrics),
        )
    realized = sides["reference"][2]
    return sides, known, lambda at: realized(known[at])


def _reg_realized(
    rows: slice | np.ndarray, *, y: np.ndarray, p: np.ndarray, metrics: tuple[str, ...]
) -> dict[str, float]:
    yy, pp = y[rows], p[rows]
    keep = kept(np.isfinite(yy) & np.isfinite(pp))
    return realized(yy[keep], pp[keep], metrics)


def _reg_estimate(
    rows: slice | np.ndarray,
    *,
    loss: dict[str, np.ndarray] | None,
    p: np.ndarray,
    metrics: tuple[str, ...],
) -> dict[str, float]:
    if loss is None:
        return dict.fromkeys(metrics, float("nan"))
    return estimate({k: v[rows] for k, v in loss.items()}, p[rows], metrics)
