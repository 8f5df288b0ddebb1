"""The monitoring reference: the evaluated test split with predictions, and its feature profile.

:func:`scored_frame` puts the model's outputs on rows the way this reference holds them, so a
reference the monitor builds from other rows (``monitor.reference``: training rows, a file, a
date range) has exactly the columns of the champion's.

Saved per model version under ``<data_dir>/reference/<model>/v<version>/`` so the monitor stage and
the server find the champion's reference from the registry alias alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.core.atomic import replace_dir, staging_dir
from lib.core.contracts.predlog import PREDICTION, PROBA_PREFIX, proba_column
from lib.data.drift_profile import Kind, build_profile
from lib.data.schema import Schema

REFERENCE = "reference.parquet"
PROFILE = "profile.json"
DRIFT_PROFILE = (
    "drift_profile.npz"  # lib.data.drift_profile.Profile: what monitoring compares against
)
_QUANTILES = np.linspace(0.0, 1.0, 101)
_BINS = 20


def _numeric_profile(values: pd.Series) -> dict[str, Any]:
    present = values.dropna().to_numpy(dtype=float)
    if len(present) == 0:
        return {"kind": "numeric", "count": 0, "missing": int(values.isna().sum())}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, _BINS + 1)))
    counts, _ = (
        np.histogram(present, bins=edges) if len(edges) > 1 else (np.array([len(present)]), edges)
    )
    return {
        "kind": "numeric",
        "count": len(present),
        "missing": int(values.isna().sum()),
        "mean": float(present.mean()),
        "std": float(present.std(ddof=1)) if len(present) > 1 else 0.0,
        "quantiles": np.quantile(present, _QUANTILES).tolist(),
        "bin_edges": edges.tolist(),
        "bin_counts": counts.tolist(),
    }


def _categorical_profile(values: pd.Series) -> dict[str, Any]:
    counts = values.dropna().astype(str).value_counts()
    return {
        "kind": "categorical",
        "count": int(counts.sum()),
        "missing": int(values.isna().sum()),
        "frequencies": {str(k): int(v) for k, v in counts.items()},
    }


def feature_profile(frame: pd.DataFrame, schema: Schema, extra: list[str]) -> dict[str, Any]:
    """Per-column summary the drift checks compare against without re-reading the reference.

    Numeric (and boolean, date) columns: count, missing, mean, std, 101 quantiles and a 20-bin
    quantile histogram; categorical: value frequencies. ``extra`` columns (predictions) too.
    """
    columns: dict[str, Any] = {}
    for name in [*schema.names(), *extra]:
        values = frame[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            values = (values - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        columns[name] = _numeric_profile(values) if numeric else _categorical_profile(values)
    return {"rows": len(frame), "columns": columns}


def output_kinds(schema: Schema) -> dict[str, Kind]:
    """Return the model-output columns profiled for prediction drift, with their kinds."""
    if schema.task == "regression" or not schema.classes:
        return {PREDICTION: "numeric"}
    kinds: dict[str, Kind] = {PREDICTION: "categorical"}
    for label in schema.classes[1:] if len(schema.classes) == 2 else schema.classes:
        kinds[proba_column(label)] = "numeric"
    return kinds


def scored_frame(
    rows: pd.DataFrame, schema: Schema, pred: Any, proba: np.ndarray | None
) -> tuple[pd.DataFrame, list[str]]:
    """Return ``rows`` with the model's outputs as a monitoring reference holds them.

    The columns are those the evaluate stage saves with the champion's test rows: ``prediction``
    and, for classifiers, ``proba_<class>`` for every class in the schema's order. Any such
    columns already in ``rows`` (a saved reference read back) are replaced by these outputs.

    Parameters
    ----------
    rows
        The rows scored (features, and the target when known); not modified.
    schema
        Gives the classes, in the order of ``proba``'s columns.
    pred, proba
        The model's labels (or values) and class probabilities (None: regression).

    Returns
    -------
    tuple of (pandas.DataFrame, list of str)
        The new frame and the names of its output columns.
    """
    names = [PREDICTION]
    outputs: dict[str, Any] = {PREDICTION: np.asarray(pred)}
    if proba is not None and schema.classes is not None:
        for i, label in enumerate(schema.classes):
            outputs[proba_column(label)] = np.asarray(proba)[:, i]
            names.append(proba_column(label))
    features = set(schema.names())
    stale = [
        c
        for c in rows.columns
        if (c == PREDICTION or c.startswith(PROBA_PREFIX)) and c not in features
    ]
    return rows.drop(columns=stale).assign(**outputs), names


def drift_kind(kind: str) -> Kind:
    """Return how a column kind is compared: dates as numbers (days), booleans as categories."""
    return "numeric" if kind in ("numeric", "datetime") else "categorical"


def profile_kinds(schema: Schema, frame: pd.DataFrame) -> dict[str, Kind]:
    """Return how each feature (dates as days) and model output in ``frame`` is profiled."""
    kinds: dict[str, Kind] = {c.name: drift_kind(c.kind) for c in schema.features}
    return kinds | {k: v for k, v in output_kinds(schema).items() if k in frame.columns}


def save_reference(
    frame: pd.DataFrame, schema: Schema, extra: list[str], out_dir: Path, meta: dict[str, Any]
) -> Path:
    """Write the reference rows and their profile to ``out_dir`` atomically; return it."""
    stage = staging_dir(out_dir)
    frame.to_parquet(stage / REFERENCE, index=False)
    profile = {**meta, **feature_profile(frame, schema, extra)}
    (stage / PROFILE).write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
    build_profile(frame, profile_kinds(schema, frame)).save(stage / DRIFT_PROFILE)
    replace_dir(stage, out_dir)
    return out_dir
