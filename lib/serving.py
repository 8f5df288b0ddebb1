"""What the model server needs from lib: load a model with its contract, check rows, predict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib import tracking
from lib.errors import ModelNotFoundError
from lib.params import Params
from lib.schema import ColumnSchema, Schema

_TRUE = {True, "true", "True", "1"}
_FALSE = {False, "false", "False", "0"}


@dataclass(frozen=True)
class Problem:
    """One reason a submitted row is unusable."""

    row: int
    field: str
    reason: str


class InputError(ValueError):
    """Rows that break the model's input contract (each problem names the row and field)."""

    def __init__(self, problems: list[Problem], code: str = "invalid_input") -> None:
        first = problems[0]
        super().__init__(f"row {first.row}, field {first.field!r}: {first.reason}")
        self.problems = problems
        self.code = code


@dataclass(frozen=True)
class LoadedModel:
    """A fitted pipeline with its schema and registry facts."""

    pipeline: Any
    schema: Schema
    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    threshold: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    trained_at: str | None = None

    @property
    def classes(self) -> list[Any] | None:
        """Class labels in the schema's order (None for regression)."""
        return self.schema.classes

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Return (labels or values, class probabilities in schema order or None)."""
        if self.schema.task == "regression":
            return np.asarray(self.pipeline.predict(frame), dtype=float), None
        raw = np.asarray(self.pipeline.predict_proba(frame))
        order = [list(self.pipeline.classes_).index(c) for c in self.classes or []]
        proba = raw[:, order]
        labels = np.asarray(self.classes)
        if self.threshold is not None and len(labels) == 2:
            return np.where(proba[:, 1] >= self.threshold, labels[1], labels[0]), proba
        return labels[np.argmax(proba, axis=1)], proba


def _resolve_version(params: Params) -> tuple[Any, str | None]:
    """Return the champion, or else the newest version, of the project's registered model."""
    from mlflow import MlflowClient

    name = tracking.model_name(params)
    try:
        return tracking.version_by_alias(name, tracking.CHAMPION), tracking.CHAMPION
    except ModelNotFoundError:
        versions = MlflowClient().search_model_versions(f"name = '{name}'")
        if not versions:
            raise ModelNotFoundError(
                f"model {name!r} has no versions in {tracking.tracking_uri(params)}; run the "
                "pipeline first (make run) or set QUIRE_SERVER_MODEL_URI"
            ) from None
        return max(versions, key=lambda v: int(v.version)), None


def load_model(params: Params, uri: str | None = None) -> LoadedModel:
    """Load ``uri`` (an MLflow model URI or local path), or the project's champion.

    Parameters
    ----------
    params
        Gives the MLflow store and the registered model name.
    uri
        ``models:/name@alias``, ``models:/name/3``, ``runs:/...`` or a local model folder.

    Returns
    -------
    LoadedModel
        The pipeline, its schema (from its training run, else the processed data's) and facts.
    """
    import mlflow

    tracking.setup(params)
    if uri is None:
        version, alias = _resolve_version(params)
        uri = f"models:/{version.name}/{version.version}"
    else:
        version, alias = _version_for_uri(uri)
    try:
        pipeline = mlflow.sklearn.load_model(uri)
    except (OSError, mlflow.exceptions.MlflowException) as exc:
        raise ModelNotFoundError(f"cannot load model {uri!r}: {str(exc).splitlines()[0]}") from None
    if version is None:
        return LoadedModel(pipeline, _local_schema(params), uri)
    run_id = version.tags.get("quire.run_id") or version.run_id
    raw = version.tags.get("quire.threshold")
    metrics = mlflow.get_run(run_id).data.metrics if run_id else {}
    return LoadedModel(
        pipeline=pipeline,
        schema=_run_schema(run_id) if run_id else _local_schema(params),
        uri=uri,
        name=version.name,
        version=str(version.version),
        alias=alias,
        run_id=run_id,
        threshold=float(raw) if raw not in (None, "", "None") else None,
        metrics={k: float(v) for k, v in metrics.items()},
        trained_at=pd.Timestamp(version.creation_timestamp, unit="ms", tz="UTC").isoformat(),
    )


def registered_version(params: Params, uri: str | None = None) -> str | None:
    """Return the registry version ``uri`` (default: the project's champion) points at now.

    None for URIs that name a fixed model (a version number, a run, a local folder).
    """
    tracking.setup(params)
    if uri is None:
        return str(_resolve_version(params)[0].version)
    if uri.startswith("models:/") and "@" in uri:
        return str(_version_for_uri(uri)[0].version)
    return None


def _version_for_uri(uri: str) -> tuple[Any, str | None]:
    from mlflow import MlflowClient

    if not uri.startswith("models:/"):
        return None, None
    name, _, ref = uri.removeprefix("models:/").partition("@")
    if ref:
        return tracking.version_by_alias(name, ref), ref
    name, _, number = uri.removeprefix("models:/").partition("/")
    return MlflowClient().get_model_version(name, number), None


def _run_schema(run_id: str) -> Schema:
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="schema.json")
    return Schema.load(Path(path))


def _local_schema(params: Params) -> Schema:
    from lib.ingest import SCHEMA, processed_dir

    return Schema.load(processed_dir(params) / SCHEMA)


# --------------------------------------------------------------------------------------------
# Input contract


def _number(value: Any) -> float | str | None:
    """Return the float value, None for null, or a string saying what is wrong."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN and Infinity are not allowed; send null for a missing value"
    return float(value)


def _boolean(value: Any) -> float | str | None:
    if value is None:
        return None
    if not isinstance(value, bool | int | float | str):
        return f"expected true or false, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN and Infinity are not allowed; send null for a missing value"
    if value in _TRUE:
        return 1.0
    if value in _FALSE:
        return 0.0
    return f"expected true or false, got {value!r}"[:80]


def _category(value: Any) -> str | tuple[str] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return str(int(value)) if float(value).is_integer() else str(value)
    return (f"expected a string, got {type(value).__name__}",)


def _date(value: Any) -> pd.Timestamp | str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return f"expected an ISO date string, got {type(value).__name__}"
    try:
        stamp = pd.Timestamp(value)
    except ValueError:
        return f"expected an ISO date such as 2024-01-31, got {value[:40]!r}"
    if pd.isna(stamp):
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    if not pd.Timestamp.min <= stamp <= pd.Timestamp.max:
        return f"dates must fall between 1677-09-22 and 2262-04-11, got {value[:40]!r}"
    return stamp


def _column(
    col: ColumnSchema, rows: Sequence[Mapping[str, Any]], problems: list[Problem]
) -> list[Any]:
    out: list[Any] = []
    for i, row in enumerate(rows):
        if col.name not in row:
            problems.append(Problem(i, col.name, "missing field"))
            out.append(None)
            continue
        value = row[col.name]
        if col.kind == "numeric":
            parsed: Any = _number(value)
        elif col.kind == "boolean":
            parsed = _boolean(value)
        elif col.kind == "datetime":
            parsed = _date(value)
        else:
            parsed = _category(value)
            if isinstance(parsed, tuple):
                problems.append(Problem(i, col.name, parsed[0]))
                parsed = None
        if isinstance(parsed, str) and col.kind != "categorical":
            problems.append(Problem(i, col.name, parsed))
            parsed = None
        out.append(parsed)
    return out


def records_to_frame(
    rows: Sequence[Any], schema: Schema, *, extra: str = "reject", max_rows: int = 10_000
) -> tuple[pd.DataFrame, list[list[str]]]:
    """Check submitted rows against the schema and return them as a model-ready frame.

    Parameters
    ----------
    rows
        One mapping of field → value per row.
    schema
        The model's training schema.
    extra
        ``reject`` fields the schema does not know, or ``ignore`` them.
    max_rows
        The most rows one request may carry.

    Returns
    -------
    tuple of (pandas.DataFrame, list of list of str)
        The frame, and per row the fields whose category was not seen in training.

    Raises
    ------
    InputError
        Naming every bad row and field (at most the first 20).
    """
    if len(rows) == 0:
        raise InputError(
            [Problem(0, "", "the batch is empty; send at least one row")], "empty_batch"
        )
    if len(rows) > max_rows:
        reason = f"{len(rows):,} rows exceed the limit of {max_rows:,} per request; split the batch"
        raise InputError([Problem(max_rows, "", reason)], "batch_too_large")
    problems = [
        Problem(i, "", "expected an object of field: value")
        for i, r in enumerate(rows)
        if not isinstance(r, Mapping)
    ]
    if problems:
        raise InputError(problems[:20])
    known = set(schema.names())
    if extra == "reject":
        for i, row in enumerate(rows):
            for name in row:
                if name not in known:
                    problems.append(
                        Problem(
                            i,
                            str(name)[:60],
                            "unknown field; remove it (the server rejects extra fields)",
                        )
                    )
    columns = {col.name: _column(col, rows, problems) for col in schema.features}
    if problems:
        raise InputError(problems[:20])
    frame = pd.DataFrame(columns)
    for col in schema.features:
        if col.kind in ("numeric", "boolean"):
            frame[col.name] = frame[col.name].astype(float)
        elif col.kind == "datetime":
            frame[col.name] = pd.to_datetime(frame[col.name]).astype("datetime64[ns]")
    return frame, _unknown_categories(frame, schema)


def _unknown_categories(frame: pd.DataFrame, schema: Schema) -> list[list[str]]:
    flags: list[list[str]] = [[] for _ in range(len(frame))]
    for col in schema.features:
        if col.kind != "categorical" or col.categories is None:
            continue
        values = frame[col.name]
        unseen = values.notna() & ~values.isin(col.categories)
        for i in np.flatnonzero(unseen.to_numpy()):
            flags[i].append(col.name)
    return flags
