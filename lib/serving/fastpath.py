"""A lean inference path for Quire's fitted pipelines that gives the very same numbers.

scikit-learn validates its input at every step: one row through the ColumnTransformer's four
sub-pipelines costs about 10 ms, while the arithmetic takes microseconds. ``compile_pipeline``
turns a fitted ``Pipeline([("pre", ColumnTransformer), ("model", estimator)])`` whose steps are
all of the kinds Quire builds (imputers, clippers, scalers, encoders, date expansion) into numpy
operations on column arrays, and hands the result to the same fitted estimator.

Encoders are compiled into lookup tables filled by the fitted encoder itself (one probe row per
known category, plus one unseen value), so even infrequent-category grouping and dropped columns
come out exactly as scikit-learn computes them. ``FastPipeline.verify`` compares the transformed
matrix and the probabilities with the pipeline's own, bit for bit, on probe rows; the server only
uses a fast path that passed. Anything unsupported compiles to ``None``, and a value the tables
cannot place raises ``Unsupported``: the caller then uses the pipeline.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, RobustScaler, StandardScaler

from lib.data.preprocess import DateFeatures, MissingAsNaN, QuantileClipper

Columns = Mapping[str, np.ndarray]
Step = Callable[[np.ndarray], np.ndarray]
_UNSEEN = "\x00quire: a value never seen in training"


class Unsupported(Exception):
    """The compiled path cannot handle this input; use the pipeline."""


def _imputer(step: SimpleImputer) -> Step | None:
    stats = step.statistics_
    if step.add_indicator or not (
        isinstance(step.missing_values, float) and np.isnan(step.missing_values)
    ):
        return None
    if stats.dtype.kind == "f":
        if np.isnan(stats).any():  # scikit-learn drops such columns
            return None

        def numeric(X: np.ndarray) -> np.ndarray:
            out = np.array(X, dtype=float)
            mask = np.isnan(out)
            if mask.any():
                out[mask] = np.broadcast_to(stats, out.shape)[mask]
            return out

        return numeric

    def objects(X: np.ndarray) -> np.ndarray:
        out = np.array(X, dtype=object)
        mask = out != out  # NaN (scikit-learn's test for object arrays)
        if mask.any():
            out[mask] = np.broadcast_to(stats, out.shape)[mask]
        return out

    return objects


def _scaler(center: np.ndarray | None, scale: np.ndarray | None) -> Step:
    def run(X: np.ndarray) -> np.ndarray:
        out = np.array(X, dtype=float)
        if center is not None:
            out -= center
        if scale is not None:
            out /= scale
        return out

    return run


def _encoder(step: OneHotEncoder | OrdinalEncoder) -> Step | None:
    """Lookup tables per input column, filled by the fitted encoder itself."""
    categories = step.categories_
    if any(c.dtype != object or not all(isinstance(v, str) for v in c) for c in categories):
        return None
    if isinstance(step, OneHotEncoder):
        if step.sparse_output:
            return None
        widths = list(getattr(step, "_n_features_outs", []))
    else:
        widths = [1] * len(categories)
    if len(widths) != len(categories):
        return None
    offsets = np.cumsum([0, *widths])
    base = [c[0] for c in categories]
    # Per input column: the known categories, and a table with one output row per category
    # plus a last row for any unseen value (index -1 of get_indexer lands there).
    tables: list[tuple[pd.Index, np.ndarray]] = []
    for j, cats in enumerate(categories):
        probe = np.array([base] * (len(cats) + 1), dtype=object)
        probe[:, j] = [*cats, _UNSEEN]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "unknown categories ... encoded as zeros"
            out = np.asarray(step.transform(probe))
        if out.shape[1] != offsets[-1]:
            return None
        index = pd.Index(list(cats), dtype=object)
        if not index.is_unique:
            return None
        tables.append((index, out[:, offsets[j] : offsets[j + 1]]))
    dtype = out.dtype

    def run(X: np.ndarray) -> np.ndarray:
        result = np.empty((X.shape[0], offsets[-1]), dtype=dtype)
        for j, (index, table) in enumerate(tables):
            column = X[:, j]
            if not set(map(type, column)) <= {str}:
                raise Unsupported(f"encoder input in column {j} is not all strings")
            codes = index.get_indexer(column)  # type: ignore[arg-type]  # an array works
            result[:, offsets[j] : offsets[j + 1]] = table[codes]
        return result

    return run


def _step(step: Any) -> Step | None:
    """Compile one fitted transformer, or None when it is not a supported kind."""
    kind = type(step)
    if kind in (MissingAsNaN, QuantileClipper, DateFeatures):  # Quire's own: plain numpy
        return step.transform  # type: ignore[no-any-return]
    if kind is SimpleImputer:
        return _imputer(step)
    if kind is StandardScaler:
        return _scaler(step.mean_, step.scale_)
    if kind is RobustScaler:
        return _scaler(step.center_, step.scale_)
    if kind in (OneHotEncoder, OrdinalEncoder):
        return _encoder(step)
    return None


def _branch(transformer: Any) -> list[Step] | None:
    is_pipeline = isinstance(transformer, Pipeline)
    steps = [s for _, s in transformer.steps] if is_pipeline else [transformer]
    compiled = [_step(s) for s in steps]
    return None if any(c is None for c in compiled) else compiled  # type: ignore[return-value]


@dataclass(frozen=True)
class FastPipeline:
    """A compiled ColumnTransformer plus the pipeline's own fitted final estimator."""

    branches: tuple[tuple[tuple[str, ...], tuple[Step, ...]], ...]
    estimator: Any

    def transform(self, columns: Columns) -> np.ndarray:
        """Return exactly what the pipeline's preprocessing step returns for these columns."""
        parts = []
        for names, steps in self.branches:
            values = np.column_stack([columns[n] for n in names])
            for step in steps:
                values = step(values)
            parts.append(values)
        return np.hstack(parts)

    def predict_proba(self, columns: Columns) -> np.ndarray:
        """Class probabilities, as ``pipeline.predict_proba``."""
        return np.asarray(self.estimator.predict_proba(self.transform(columns)))

    def predict(self, columns: Columns) -> np.ndarray:
        """Labels or values, as ``pipeline.predict``."""
        return np.asarray(self.estimator.predict(self.transform(columns)))

    def verify(self, pipeline: Pipeline, columns: Columns, frame: pd.DataFrame) -> bool:
        """Check, bit for bit, that this path and ``pipeline`` agree on ``frame``."""
        try:
            ours = self.transform(columns)
        except Unsupported:
            return False
        theirs = np.asarray(pipeline[:-1].transform(frame))
        if ours.dtype != theirs.dtype or not np.array_equal(ours, theirs, equal_nan=True):
            return False
        if hasattr(self.estimator, "predict_proba"):
            return np.array_equal(self.predict_proba(columns), pipeline.predict_proba(frame))
        return np.array_equal(self.predict(columns), pipeline.predict(frame))


def compile_pipeline(pipeline: Any) -> FastPipeline | None:
    """Compile a fitted ``Pipeline([("pre", ColumnTransformer), ("model", ...)])``, if supported.

    Parameters
    ----------
    pipeline
        A fitted scikit-learn pipeline as Quire's training builds it.

    Returns
    -------
    FastPipeline or None
        None when any step is of a kind this module does not compile; call ``verify`` before use.
    """
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    pre, estimator = pipeline.steps[0][1], pipeline.steps[-1][1]
    if not isinstance(pre, ColumnTransformer) or getattr(pre, "sparse_output_", False):
        return None
    if hasattr(estimator, "feature_names_in_"):  # it was fitted on a frame: not our layout
        return None
    branches = []
    for _, transformer, names in pre.transformers_:
        if isinstance(transformer, str):
            if transformer == "drop":
                continue
            return None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        steps = _branch(transformer)
        if steps is None:
            return None
        branches.append((tuple(names), tuple(steps)))
    return FastPipeline(tuple(branches), estimator) if branches else None
