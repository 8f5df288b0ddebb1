"""What the model server needs from lib: load a model with its contract, check rows, predict."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.core import tracking
from lib.core.errors import ModelNotFoundError
from lib.core.layout import Layout
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.data.schema import ColumnSchema, Schema
from lib.serving.fastpath import FastPipeline, Unsupported, compile_pipeline

log = get_logger(__name__)
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
class Batch:
    """Checked input rows as typed column arrays, in the schema's column order.

    Numeric and boolean columns are float (NaN: missing), categorical ones object (str or None),
    dates ``datetime64[ns]`` (NaT: missing). ``unknown`` lists, per row, the fields whose
    category was not seen in training.
    """

    columns: dict[str, np.ndarray]
    unknown: list[list[str]]

    def __len__(self) -> int:
        return len(self.unknown)

    def frame(self) -> pd.DataFrame:
        """Return the rows as a DataFrame (what the pipeline itself takes)."""
        return pd.DataFrame(self.columns)

    @staticmethod
    def concat(parts: Sequence[Batch]) -> Batch:
        """Stack batches in order."""
        if len(parts) == 1:
            return parts[0]
        names = parts[0].columns
        return Batch(
            {n: np.concatenate([p.columns[n] for p in parts]) for n in names},
            [flags for p in parts for flags in p.unknown],
        )


@dataclass(frozen=True)
class LoadedModel:
    """A fitted pipeline with its schema, registry facts and (when verified) its fast path."""

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
    fast: FastPipeline | None = None

    @property
    def classes(self) -> list[Any] | None:
        """Class labels in the schema's order (None for regression)."""
        return self.schema.classes

    def _call(self, data: Batch | pd.DataFrame, *methods: str) -> list[np.ndarray]:
        """Transform the rows once, then call the final estimator's ``methods`` on them.

        The same as calling the pipeline's methods (a Pipeline does exactly this); the fast path
        replaces only the preprocessing, by an exact equivalent.
        """
        final = self.pipeline[-1]
        transformed = None
        if isinstance(data, Batch):
            if self.fast is not None:
                with contextlib.suppress(Unsupported):  # a value it cannot place: use the pipeline
                    transformed = self.fast.transform(data.columns)
            if transformed is None:
                data = data.frame()
        if transformed is None:
            transformed = self.pipeline[:-1].transform(data)
        return [np.asarray(getattr(final, m)(transformed)) for m in methods]

    def _in_schema_order(self, raw: np.ndarray) -> np.ndarray:
        order = [list(self.pipeline.classes_).index(c) for c in self.classes or []]
        return raw[:, order]

    def predict(self, data: Batch | pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Return (labels or values, class probabilities in schema order or None).

        Labels follow the decision threshold chosen at evaluation, when there is one.
        """
        if self.schema.task == "regression":
            return np.asarray(self._call(data, "predict")[0], dtype=float), None
        proba = self._in_schema_order(self._call(data, "predict_proba")[0])
        labels = np.asarray(self.classes)
        if self.threshold is not None and len(labels) == 2:
            return np.where(proba[:, 1] >= self.threshold, labels[1], labels[0]), proba
        return labels[np.argmax(proba, axis=1)], proba

    def pipeline_predict(self, data: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        """Return the pipeline's own ``predict`` (as MLflow answers) and class probabilities.

        Probabilities (for the prediction log) are in schema order; None for regression.
        """
        if self.schema.task == "regression":
            return self._call(data, "predict")[0], None
        labels, proba = self._call(data, "predict", "predict_proba")
        return labels, self._in_schema_order(proba)


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


def load_model(params: Params, uri: str | None = None, *, fast: bool = True) -> LoadedModel:
    """Load ``uri`` (an MLflow model URI or local path), or the project's champion.

    Parameters
    ----------
    params
        Gives the MLflow store and the registered model name.
    uri
        ``models:/name@alias``, ``models:/name/3``, ``runs:/...`` or a local model folder.
    fast
        Compile the pipeline into its fast path (used only if it matches the pipeline exactly).

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
        model = LoadedModel(pipeline, _local_schema(params), uri)
        return with_fast_path(model) if fast else model
    run_id = version.tags.get("quire.run_id") or version.run_id
    raw = version.tags.get("quire.threshold")
    metrics = mlflow.get_run(run_id).data.metrics if run_id else {}
    model = LoadedModel(
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
    return with_fast_path(model) if fast else model


def probe_rows(schema: Schema, n: int = 256, seed: int = 0) -> list[dict[str, Any]]:
    """Return rows that reach every corner of the input contract.

    Each category, an unseen one, missing values, values far outside the training range, old and
    future dates.
    """
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for col in schema.features:
        if col.kind == "numeric":
            low = col.min if col.min is not None else -1.0
            high = col.max if col.max is not None else 1.0
            span = max(high - low, 1.0)
            pool: list[Any] = [None, low, high, low - 10 * span, high + 10 * span, 0.0]
            values = [*pool, *rng.uniform(low - span, high + span, n).tolist()]
        elif col.kind == "boolean":
            values = [None, True, False]
        elif col.kind == "datetime":
            days = rng.integers(-20_000, 40_000, n)
            values = [None, *[str(np.datetime64(int(d), "D")) for d in days]]
        else:
            values = [None, "never seen in training", *(col.categories or ["a", "b"])]
        picks = rng.permutation(np.resize(np.arange(len(values)), n))
        for row, k in zip(rows, picks, strict=True):
            row[col.name] = values[k]
    return rows


def with_fast_path(model: LoadedModel) -> LoadedModel:
    """Return ``model`` with its compiled fast path, if that matches the pipeline bit for bit."""
    fast = compile_pipeline(model.pipeline)
    if fast is None:
        log.info("fast_path_unsupported", model=model.name, version=model.version)
        return model
    batch = check_rows(probe_rows(model.schema), model.schema)
    if not fast.verify(model.pipeline, batch.columns, batch.frame()):
        log.warning("fast_path_mismatch", model=model.name, version=model.version)
        return model
    return replace(model, fast=fast)


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
    from lib.data.ingest import SCHEMA

    return Schema.load(Layout.of(params).processed / SCHEMA)


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


_MISSING = object()


def _transpose(rows: Sequence[Mapping[str, Any]], names: list[str]) -> list[list[Any]]:
    """Values per field (``_MISSING`` where a row lacks the field)."""
    try:  # every row has every field: one C-level pass
        return [list(c) for c in zip(*map(itemgetter(*names), rows), strict=True)]
    except KeyError:
        return [[row.get(name, _MISSING) for row in rows] for name in names]


def _column(
    col: ColumnSchema,
    values: list[Any],
    rows: Sequence[Mapping[str, Any]],
    problems: list[Problem],
) -> np.ndarray:
    """Return one column as a typed array, adding a Problem for every bad value."""
    fast = _whole_column(col.kind, values)
    if fast is not None:
        return fast
    checked = _value_by_value(col, rows, problems)
    if col.kind in ("numeric", "boolean"):
        return np.array(checked, dtype=float)
    if col.kind == "datetime":
        return np.array(
            [np.datetime64("NaT", "ns") if v is None else v.to_datetime64() for v in checked],
            dtype="datetime64[ns]",
        )
    return np.array(checked, dtype=object)


def _whole_column(kind: str, values: list[Any]) -> np.ndarray | None:
    """Convert a column of well-formed values in one step; None sends it value by value.

    The common case for large batches: numbers that are all numbers, strings that are all
    strings. Anything unusual (a missing field, a wrong type, NaN, an odd date) returns None,
    and the value-by-value check finds and names it.
    """
    types = set(map(type, values))
    try:
        if kind == "numeric" and types <= {float, int, type(None)}:
            array = np.array(values, dtype=float)
            if np.isinf(array).any() or np.isnan(array).sum() != values.count(None):
                return None  # Infinity or a NaN literal: reported row by row
            return array
        if kind == "boolean" and types <= {bool, type(None)}:
            return np.array(values, dtype=float)
        if kind == "categorical" and types <= {str, type(None)}:
            return np.array(values, dtype=object)
        if kind == "datetime" and types <= {str, type(None)}:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                dates = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601")
            if dates.dt.tz is not None:
                dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
            return dates.to_numpy(dtype="datetime64[ns]")
    except (ValueError, TypeError, OverflowError, Warning):
        return None
    return None


def _value_by_value(
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


def check_rows(
    rows: Sequence[Any], schema: Schema, *, extra: str = "reject", max_rows: int = 10_000
) -> Batch:
    """Check submitted rows against the schema and return them as typed columns.

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
    Batch
        The columns, and per row the fields whose category was not seen in training.

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
        if type(r) is not dict and not isinstance(r, Mapping)  # the exact check is much cheaper
    ]
    if problems:
        raise InputError(problems[:20])
    known = set(schema.names())
    if extra == "reject":
        for i, row in enumerate(rows):
            if row.keys() <= known:
                continue
            for name in row:
                if name not in known:
                    problems.append(
                        Problem(
                            i,
                            str(name)[:60],
                            "unknown field; remove it (the server rejects extra fields)",
                        )
                    )
    names = schema.names()
    if len(names) == 1:  # itemgetter of one name gives values, not tuples
        values = [[row.get(names[0], _MISSING) for row in rows]]
    else:
        values = _transpose(rows, names)
    columns = {
        col.name: _column(col, column, rows, problems)
        for col, column in zip(schema.features, values, strict=True)
    }
    if problems:
        raise InputError(problems[:20])
    return Batch(columns, _unknown_categories(columns, schema, len(rows)))


def records_to_frame(
    rows: Sequence[Any], schema: Schema, *, extra: str = "reject", max_rows: int = 10_000
) -> tuple[pd.DataFrame, list[list[str]]]:
    """Like ``check_rows``, as a DataFrame and the unknown categories per row."""
    batch = check_rows(rows, schema, extra=extra, max_rows=max_rows)
    return batch.frame(), batch.unknown


def _unknown_categories(
    columns: Mapping[str, np.ndarray], schema: Schema, n: int
) -> list[list[str]]:
    flags: list[list[str]] = [[] for _ in range(n)]
    for col in schema.features:
        if col.kind != "categorical" or col.categories is None:
            continue
        values = pd.Series(columns[col.name], dtype=object, copy=False)
        unknown = values.notna().to_numpy() & ~values.isin(col.categories).to_numpy()
        for i in np.flatnonzero(unknown).tolist():
            flags[i].append(col.name)
    return flags
