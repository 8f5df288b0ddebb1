"""The data contract: column kinds, nullability, ranges and categories, inferred or declared.

The schema is saved beside the processed data and is the one list of columns that preprocessing,
validation, the server's request schema and drift monitoring all read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from lib.core import tasks
from lib.core.atomic import write_text
from lib.core.errors import DataValidationError
from lib.core.logs import get_logger
from lib.core.param_sections import ChecksParams, ColumnKind, ColumnSpec, DataParams
from lib.data.infer import (
    FALSE_WORDS,
    TRUE_WORDS,
    DateFormat,
    date_format_of,
    read_column,
)

Task = tasks.Task  # one definition, with the task tables
MAX_CATEGORIES_KEPT = 1000
MAX_CLASSES = 50
log = get_logger(__name__)


class ColumnSchema(BaseModel):
    """One feature column."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: ColumnKind
    nullable: bool = True
    declared: bool = False
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    rule: str = ""  # why the column has its kind: "declared in data.columns", "0/1 values", ...
    format: str | None = None  # dates: the format every value is parsed with (None: ISO, mixed)


class Schema(BaseModel):
    """The whole table: features, target and task."""

    model_config = ConfigDict(extra="forbid")

    target: str
    task: Task
    classes: list[Any] | None = None
    id_column: str | None = None
    date_column: str | None = None
    features: list[ColumnSchema]
    params_fingerprint: str = ""
    # Columns of the table left out of the features, with the reason (identifier, free text,
    # constant, empty); declaring one in data.columns keeps it.
    excluded: dict[str, str] = Field(default_factory=dict)

    def names(self, kind: ColumnKind | None = None) -> list[str]:
        """Return feature names, optionally only those of one kind."""
        return [c.name for c in self.features if kind is None or c.kind == kind]

    def column(self, name: str) -> ColumnSchema:
        """Return the schema of feature ``name``."""
        return next(c for c in self.features if c.name == name)

    def sha256(self) -> str:
        """Return the hash of the schema's canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_json(self) -> str:
        """Return the schema as stable, indented JSON."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    def save(self, path: Path) -> None:
        """Write the schema to ``path`` atomically."""
        write_text(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Schema:
        """Read a schema written by :meth:`save`."""
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


def params_fingerprint(data: DataParams) -> str:
    """Hash of the data parameters that shape a schema; a change triggers re-inference."""
    keys = ("target", "task", "id_column", "date_column", "columns", "drop")
    blob = json.dumps(data.model_dump(mode="json", include=set(keys)), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# Parsing values into canonical dtypes, naming the first bad row


def _bad_values(path: Path, column: str, bad: pd.Series, expected: str, fix: str) -> None:
    if not bad.any():
        return
    positions = np.flatnonzero(bad.to_numpy())
    first = int(positions[0])
    more = f" ({len(positions):,} such values)" if len(positions) > 1 else ""
    raise DataValidationError(
        f"{path}: column {column!r} row {first + 1:,}: {_shown(bad, first)} is "
        f"not {expected}{more}; {fix}",
        path=path,
        row=first + 1,
        column=column,
        check="wrong_type",
    )


def _shown(bad: pd.Series, position: int) -> str:
    value = bad.attrs.get("values")
    text = repr(value.iat[position]) if value is not None else "value"
    return text if len(text) <= 40 else text[:37] + "...'"


def _flag(values: pd.Series, bad: pd.Series) -> pd.Series:
    bad.attrs["values"] = values
    return bad


def _plain(values: pd.Series) -> pd.Series:
    """Return a pandas ``category`` column as its values (objects); other columns as they are."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(object)
    return values


def to_numeric(values: pd.Series, column: str, path: Path) -> pd.Series:
    """Parse a column as float64; raise naming the first value that is not a number."""
    values = _plain(values)
    if pd.api.types.is_numeric_dtype(values):  # bool included
        return values.astype(float, copy=False)
    parsed = pd.to_numeric(values, errors="coerce").astype(float)
    fix = "fix the value or declare the column categorical in params (data.columns)"
    _bad_values(path, column, _flag(values, parsed.isna() & values.notna()), "a number", fix)
    return parsed


def to_boolean(values: pd.Series, column: str, path: Path) -> pd.Series:
    """Parse true/false, yes/no, 1/0 (any case) into 1.0/0.0/NaN."""
    values = _plain(values)
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    if pd.api.types.infer_dtype(values, skipna=True) == "boolean":  # True/False/None objects
        return values.map({True: 1.0, False: 0.0}).astype(float)
    text = values.astype(str).str.strip().str.lower()
    parsed = pd.Series(np.nan, index=values.index)
    parsed[text.isin(TRUE_WORDS)] = 1.0
    parsed[text.isin(FALSE_WORDS)] = 0.0
    fix = "use true/false, yes/no or 1/0, or declare the column categorical in params"
    bad = parsed.isna() & values.notna()
    _bad_values(path, column, _flag(values, bad), "a boolean", fix)
    return parsed


def to_datetime(values: pd.Series, column: str, path: Path, fmt: str | None = None) -> pd.Series:
    """Parse dates into datetime64[ns]: in format ``fmt``, else ISO 8601 then pandas' inference.

    Parameters
    ----------
    values
        The column as read.
    column, path
        For messages.
    fmt
        ``ISO8601`` or a strftime format such as ``%d.%m.%Y`` (saved in the schema by inference,
        or declared in data.columns); every value must parse in it.

    Returns
    -------
    pandas.Series
        New datetime64[ns] column, missing values as NaT.
    """
    values = _plain(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):  # stored with a time zone: UTC, naive
        utc: pd.Series = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return utc.astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    if fmt is not None:
        text = values.astype(str).str.strip().where(values.notna())
        try:
            # utc=True: times with offsets become UTC (as the server does); naive ones stay as read
            parsed = pd.to_datetime(text, errors="coerce", format=fmt, utc=True).dt.tz_localize(
                None
            )
        except ValueError as exc:  # a bad directive, e.g. a declared '%Q'
            raise DataValidationError(
                f"{path}: column {column!r}: date format {fmt!r} is not usable ({exc}); write it "
                "with strftime codes, e.g. '%d/%m/%Y %H:%M', in data.columns",
                path=path,
                column=column,
                check="date_format",
            ) from None
        fix = (
            f"write every date in format {fmt}, or declare the column's format in data.columns, "
            "e.g. {kind: datetime, format: '%d/%m/%Y'} (kind: categorical keeps it as text)"
        )
        expected = f"a date in format {fmt}"
        _bad_values(path, column, _flag(values, parsed.isna() & values.notna()), expected, fix)
        return parsed.astype("datetime64[ns]")
    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    if (parsed.isna() & values.notna()).any():
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    fix = "write dates as YYYY-MM-DD or declare the column categorical in params"
    _bad_values(path, column, _flag(values, parsed.isna() & values.notna()), "a date", fix)
    return parsed.astype("datetime64[ns]")


def to_categorical(values: pd.Series) -> pd.Series:
    """Return the values as strings (integral floats without '.0'), missing kept as NaN."""
    values = _plain(values)
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "string":
        return values  # already text; None and NaN both count as missing downstream
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        if len(finite) and (finite == finite.round()).all():
            values = values.astype("Int64")
    present = values.notna()
    out = values.astype(object).where(present, np.nan)
    out[present] = out[present].map(lambda v: v if isinstance(v, str) else str(v))
    return out


def coerce_column(
    values: pd.Series, kind: ColumnKind, column: str, path: Path, fmt: str | None = None
) -> pd.Series:
    """Parse one column into the canonical dtype of its kind (dates in format ``fmt``)."""
    if kind == "numeric":
        return to_numeric(values, column, path)
    if kind == "boolean":
        return to_boolean(values, column, path)
    if kind == "datetime":
        return to_datetime(values, column, path, fmt)
    return to_categorical(values)


# --------------------------------------------------------------------------------------------
# Inference


def _declared(data: DataParams) -> dict[str, ColumnSpec]:
    return {
        name: spec if isinstance(spec, ColumnSpec) else ColumnSpec(kind=spec)
        for name, spec in data.columns.items()
    }


def _infer_task(target: pd.Series, data: DataParams, path: Path) -> Task:
    present = target.dropna()
    n_unique = present.nunique()
    name = data.target
    if n_unique < 2 and data.task != "regression":
        first = present.iat[0] if len(present) else None
        shown = repr(first.item() if isinstance(first, np.generic) else first)
        raise DataValidationError(
            f"{path}: target {name!r} has one class ({shown}) in {len(present):,} labelled rows; "
            "a classifier needs at least two: check data.target or the data",
            path=path,
            column=name,
            check="one_class",
        )
    if data.task != "auto":
        if data.task == "binary" and n_unique != 2:
            raise DataValidationError(
                f"{path}: data.task is 'binary' but target {name!r} has {n_unique} classes; "
                "set data.task to multiclass or auto",
                path=path,
                column=name,
                check="task",
            )
        return data.task
    numeric = pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present)
    integral = numeric and bool((present == present.round()).all())
    if numeric and not (integral and n_unique <= 20):
        return "regression"
    if n_unique > MAX_CLASSES:
        raise DataValidationError(
            f"{path}: target {name!r} has {n_unique:,} distinct non-numeric values; a classifier "
            f"takes at most {MAX_CLASSES}: check data.target or set data.task: regression",
            path=path,
            column=name,
            check="task",
        )
    return "binary" if n_unique == 2 else "multiclass"


def _class_list(target: pd.Series) -> list[Any]:
    present = target.dropna()
    classes = sorted(present.unique().tolist(), key=lambda v: (str(type(v)), v))
    return [c.item() if isinstance(c, np.generic) else c for c in classes]


def draft_schema(frame: pd.DataFrame, data: DataParams, checks: ChecksParams, path: Path) -> Schema:
    """Decide each feature's kind (from a sample) and the task; ranges come later.

    Columns declared in ``data.columns`` keep their kind and whatever else they declare.
    Complete the draft with :func:`complete_schema` once the data is conformed to it.

    Parameters
    ----------
    frame
        The raw table as read.
    data
        Data parameters (target, id, date, declared columns, dropped columns).
    checks
        Inference thresholds.
    path
        The file the frame came from, for messages.

    Returns
    -------
    Schema
        Kinds, target and task; no ranges or categories yet unless declared.
    """
    require_columns(frame, data, path)
    declared = _declared(data)
    skip = {data.target, data.id_column, *data.drop}
    features: list[ColumnSchema] = []
    excluded: dict[str, str] = {}
    for name in frame.columns:
        if name in skip:
            continue
        spec = declared.get(name)
        if spec is not None:
            fields, rule = spec.model_dump(), "declared in data.columns"
            if spec.kind == "datetime" and spec.format is None:
                fields["format"], rule = _date_format(frame[name], rule)
            features.append(ColumnSchema(name=name, declared=True, rule=rule, **fields))
            continue
        if name == data.date_column:
            fmt, rule = _date_format(frame[name], "data.date_column")
            features.append(ColumnSchema(name=name, kind="datetime", rule=rule, format=fmt))
            continue
        reading = read_column(frame[name], str(name), checks)
        if reading.kind is None:
            excluded[str(name)] = reading.rule
            log.info("column_excluded", column=str(name), reason=reading.rule)
            continue
        features.append(
            ColumnSchema(name=name, kind=reading.kind, rule=reading.rule, format=reading.format)
        )
    if not features:
        left_out = "; ".join(f"{k!r}: {v}" for k, v in excluded.items()) or "none"
        raise DataValidationError(
            f"{path}: no feature columns left besides the target, id and dropped columns "
            f"(excluded: {left_out}); check data.drop, or declare a column in data.columns to "
            "keep it",
            path=path,
            check="no_features",
        )
    return Schema(
        target=data.target,
        task=_infer_task(frame[data.target], data, path),
        id_column=data.id_column,
        date_column=data.date_column if data.date_column in frame.columns else None,
        features=features,
        params_fingerprint=params_fingerprint(data),
        excluded=excluded,
    )


def _date_format(values: pd.Series, why: str) -> tuple[str | None, str]:
    """Return the format a column's dates are read in (None: no single format fits the text).

    Returns the format and the rule: ``why`` and, when a format was found, which one.
    """
    present = values.dropna()
    if present.empty:
        return None, why
    if pd.api.types.is_datetime64_any_dtype(values):  # stored as dates: later text is ISO 8601
        found: DateFormat | None = DateFormat("ISO8601", ambiguous=False)
    else:
        found = date_format_of(present)
    return (None, why) if found is None else (found.format, f"{why}; {found.rule()}")


def complete_schema(draft: Schema, frame: pd.DataFrame) -> Schema:
    """Fill nullability, ranges, categories and classes from data conformed to ``draft``.

    Values a column declared in params are kept.
    """
    features = [_profile_column(col, frame[col.name]) for col in draft.features]
    classes = None if draft.task == "regression" else _class_list(frame[draft.target])
    return draft.model_copy(update={"features": features, "classes": classes})


def _profile_column(col: ColumnSchema, values: pd.Series) -> ColumnSchema:
    update: dict[str, Any] = {}
    if not col.declared:
        update["nullable"] = bool(values.isna().any())
    if col.kind == "numeric" and values.notna().any():
        if col.min is None:
            update["min"] = float(values.min())
        if col.max is None:
            update["max"] = float(values.max())
    if col.kind == "categorical" and col.categories is None:
        counts = values.value_counts()
        update["categories"] = sorted(counts.index[:MAX_CATEGORIES_KEPT].astype(str).tolist())
    return col.model_copy(update=update)


def require_columns(frame: pd.DataFrame, data: DataParams, path: Path) -> None:
    """Raise unless the target, the id column and every declared column are present."""
    if data.target not in frame.columns:
        raise DataValidationError(
            f"{path}: target column {data.target!r} is missing (columns: "
            f"{_list(frame.columns)}); set data.target to the column to predict",
            path=path,
            column=data.target,
            check="missing_target",
        )
    wanted = [c for c in (data.id_column, *data.columns) if c is not None]
    for name in wanted:
        if name not in frame.columns:
            raise DataValidationError(
                f"{path}: required column {name!r} is missing (columns: {_list(frame.columns)}); "
                "add it to the file or remove it from params (data.columns / data.id_column)",
                path=path,
                column=name,
                check="missing_column",
            )


def _list(columns: pd.Index) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
