"""The unfitted preprocessing ``ColumnTransformer`` built from the schema and params.

Training fits it inside the model ``Pipeline``, so the served model carries its own preprocessing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, RobustScaler, StandardScaler

from lib.core.param_sections import PreprocessingParams
from lib.data.schema import Schema


def _remember_inputs(estimator: BaseEstimator, X: Any) -> None:
    """Set ``n_features_in_`` and, for frames, ``feature_names_in_`` (sklearn's conventions)."""
    estimator.n_features_in_ = np.shape(X)[1]
    if hasattr(X, "columns"):
        estimator.feature_names_in_ = np.asarray(X.columns, dtype=object)


_EPOCH = np.datetime64("1970-01-01", "ns")


class QuantileClipper(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Clip each column to quantiles learned on the training data (outlier handling).

    Parameters
    ----------
    low, high
        Quantiles in [0, 1], ``low < high``.
    """

    def __init__(self, low: float = 0.005, high: float = 0.995) -> None:
        self.low = low
        self.high = high

    def fit(self, X: Any, y: Any = None) -> QuantileClipper:
        """Learn ``lower_`` and ``upper_`` per column, ignoring NaN."""
        values = np.asarray(X, dtype=float)
        _remember_inputs(self, X)
        self.lower_ = np.nanquantile(values, self.low, axis=0)
        self.upper_ = np.nanquantile(values, self.high, axis=0)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Return a clipped copy of ``X``."""
        clipped: np.ndarray = np.clip(np.asarray(X, dtype=float), self.lower_, self.upper_)
        return clipped


class MissingAsNaN(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Make every missing marker (None, NaN, pd.NA) NaN in an object array.

    Parquet and JSON give ``None`` for a missing category, which SimpleImputer would keep as a
    category of its own; this step lets it impute them all alike.
    """

    def fit(self, X: Any, y: Any = None) -> MissingAsNaN:
        """Remember the input names; nothing is learned."""
        _remember_inputs(self, X)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Return an object array with NaN wherever ``X`` is missing."""
        values = np.array(X, dtype=object)
        values[pd.isna(values)] = np.nan
        return values


class DateFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Turn date columns into numbers: days since 1970, month and weekday."""

    def fit(self, X: Any, y: Any = None) -> DateFeatures:
        """Remember the input names; nothing is learned."""
        self.feature_names_in_ = np.asarray(
            getattr(X, "columns", range(np.shape(X)[1])), dtype=object
        )
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Return three float columns per date column (NaN where the date is missing).

        Plain numpy on datetime64 columns (the server calls this for every request); other
        columns are parsed with ``pandas.to_datetime`` first, unparseable values becoming NaN.
        """
        values = X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X)
        parts = []
        for j in range(values.shape[1]):
            column = values[:, j]
            if column.dtype.kind != "M":
                column = pd.to_datetime(pd.Series(column), errors="coerce").to_numpy()
            stamps = column.astype("datetime64[ns]")
            missing = np.isnat(stamps)
            days = (stamps - _EPOCH) / np.timedelta64(1, "D")
            month = (stamps.astype("datetime64[M]").astype(np.int64) % 12 + 1).astype(float)
            weekday = ((stamps.astype("datetime64[D]").astype(np.int64) + 3) % 7).astype(float)
            month[missing] = np.nan
            weekday[missing] = np.nan
            parts += [days, month, weekday]  # 1970-01-01 was a Thursday: weekday 3, Monday 0
        return np.column_stack(parts).astype(float, copy=False)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``<date>_days``, ``<date>_month``, ``<date>_weekday`` per input column."""
        names = self.feature_names_in_ if input_features is None else input_features
        return np.asarray(
            [f"{n}_{part}" for n in names for part in ("days", "month", "weekday")], dtype=object
        )


def _scaler(kind: str) -> list[tuple[str, Any]]:
    if kind == "standard":
        return [("scale", StandardScaler())]
    if kind == "robust":
        return [("scale", RobustScaler())]
    return []


def _numeric_steps(p: PreprocessingParams) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy=p.numeric_impute))]
    if p.clip_quantiles is not None:
        steps.append(("clip", QuantileClipper(*p.clip_quantiles)))
    return steps + _scaler(p.scale)


def _categorical_steps(p: PreprocessingParams) -> list[tuple[str, Any]]:
    impute = SimpleImputer(strategy=p.categorical_impute, fill_value="missing")
    if p.encode == "onehot":
        encoder: Any = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            max_categories=p.max_categories,
            min_frequency=p.min_frequency or None,
            sparse_output=False,
        )
    else:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=-1,
            encoded_missing_value=-1,
            max_categories=p.max_categories,
            min_frequency=p.min_frequency or None,
        )
    return [("nan", MissingAsNaN()), ("impute", impute), ("encode", encoder)]


def build_preprocessor(schema: Schema, p: PreprocessingParams) -> ColumnTransformer:
    """Return an unfitted ColumnTransformer for the schema's features.

    Parameters
    ----------
    schema
        Feature kinds come from here (the one column list).
    p
        Imputation, clipping, scaling and encoding choices.

    Returns
    -------
    sklearn.compose.ColumnTransformer
        Numeric: impute → clip → scale. Boolean: impute (most frequent). Categorical: impute →
        one-hot or ordinal encode, rare values grouped. Dates: days/month/weekday → numeric steps.
    """
    transformers: list[tuple[str, Any, list[str]]] = []
    numeric = schema.names("numeric")
    if numeric:
        transformers.append(("numeric", Pipeline(_numeric_steps(p)), numeric))
    boolean = schema.names("boolean")
    if boolean:
        transformers.append(("boolean", SimpleImputer(strategy="most_frequent"), boolean))
    categorical = schema.names("categorical")
    if categorical:
        transformers.append(("categorical", Pipeline(_categorical_steps(p)), categorical))
    dates = schema.names("datetime")
    if dates and p.date_features:
        steps = [("expand", DateFeatures()), *_numeric_steps(p)]
        transformers.append(("dates", Pipeline(steps), dates))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
