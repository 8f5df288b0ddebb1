"""The input contract: check submitted rows against the model's schema, as typed columns."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
from pandas.errors import OutOfBoundsDatetime

from lib.data.infer import FALSE_WORDS, TRUE_WORDS
from lib.data.schema import ColumnSchema, Schema
from lib.serving.batch import Batch, InputError, Problem

_FEW_ROWS = 16  # up to this many rows, columns are checked value by value (single-row serving)


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
    # the words ingest reads as booleans (yes/no, y/n, t/f, 1/0, any case), so that a row of
    # the training file is a valid request as it is
    word = value.strip().lower() if isinstance(value, str) else value
    if word is True or word in TRUE_WORDS or (word == 1 and not isinstance(word, str)):
        return 1.0
    if word is False or word in FALSE_WORDS or (word == 0 and not isinstance(word, str)):
        return 0.0
    return f"expected true or false (or yes/no, 1/0), got {value!r}"[:80]


def _category(value: Any) -> str | tuple[str] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return str(int(value)) if float(value).is_integer() else str(value)
    return (f"expected a string, got {type(value).__name__}",)


ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}"  # a whole date, then optionally a time and an offset
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
ISO_EXAMPLE = "2024-01-31"


def date_example(fmt: str | None) -> str:
    """Return an accepted value for a date column read in ``fmt`` (for messages and docs)."""
    if fmt is None or fmt == "ISO8601":
        return ISO_EXAMPLE
    return f"{ISO_EXAMPLE} or {pd.Timestamp(ISO_EXAMPLE).strftime(fmt)}"


def _date_format(text: str, fmt: str | None) -> str | None:
    """Return the format ``text`` is read in (ISO 8601 or the column's own), None: neither.

    The column's format must find digits: pandas reads 'now' and 'today' in any format.
    """
    if ISO_DATE.fullmatch(text):
        return "ISO8601"
    if fmt is not None and fmt != "ISO8601" and any(c.isdigit() for c in text):
        return fmt
    return None


def _date(value: Any, fmt: str | None = None) -> pd.Timestamp | str | None:
    """Return the date as naive UTC, None for null, or a string saying what is wrong.

    Accepted: ISO 8601 dates and date-times (an offset is converted to UTC), and the column's
    own format as ingest read the training file; never relative words ('now', 'today').
    """
    if value is None:
        return None
    wanted = f"expected an ISO date such as {ISO_EXAMPLE}"
    if fmt is not None and fmt != "ISO8601":
        wanted = f"expected an ISO date or one in format {fmt}, such as {date_example(fmt)}"
    if not isinstance(value, str):
        return f"{wanted}, got {type(value).__name__}"
    text = value.strip()
    used = _date_format(text, fmt)
    try:
        if used is None:
            raise ValueError(text)
        stamp = pd.to_datetime(text, format=used, utc=True).tz_localize(None)
    except OutOfBoundsDatetime:
        return f"dates must fall between 1677-09-22 and 2262-04-11, got {value[:40]!r}"
    except ValueError:
        return f"{wanted} (no relative dates), got {value[:40]!r}"
    return stamp


def refuses_null(col: ColumnSchema, *, inferred: bool = False) -> bool:
    """Whether a request's null (or NaN read as missing) in ``col`` is refused.

    A column declared ``nullable: false`` in ``data.columns`` refuses null. A column that merely
    had no missing value in the training file (``nullable`` inferred false) takes null: the
    pipeline's imputer fills it, as it would a gap in a later file; ``inferred=True`` refuses
    those too.
    """
    return not col.nullable and (col.declared or inferred)


NULL_REFUSED = (
    "null is not allowed: the column is declared nullable: false in data.columns; "
    "send a value, or declare nullable: true"
)


def _null_problems(name: str, values: list[Any], problems: list[Problem]) -> None:
    """Add a Problem for every null (or NaN) value of a column that refuses them."""
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and value != value):
            problems.append(Problem(i, name, NULL_REFUSED))


_MISSING = object()
MAX_ID_CHARS = 200  # an id longer than this is a mistake (a pasted document), not a key
MAX_ID_INT = 10**18


def valid_id(value: Any) -> Any:
    """Return the id as sent when it can key a row, else a tuple holding what is wrong."""
    if value is None or (type(value) is str and len(value) <= MAX_ID_CHARS):
        return value
    if isinstance(value, str):
        return (f"an id has at most {MAX_ID_CHARS} characters, got {len(value):,}",)
    if isinstance(value, int) and not isinstance(value, bool):
        if -MAX_ID_INT < value < MAX_ID_INT:
            return value
        return ("an integer id must be below 10^18 in size; send a longer one as a string",)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return value if abs(value) < 2**53 else ("a number id must be below 2^53; send a string",)
    return (f"expected a string or an integer id, got {type(value).__name__}",)


def _ids(
    rows: Sequence[Mapping[str, Any]], name: str | None, problems: list[Problem]
) -> list[Any] | None:
    """Each row's id as sent (None where absent); None when no row sent the id column."""
    if name is None:
        return None
    ids = [row.get(name) for row in rows]
    types = set(map(type, ids))
    if types == {type(None)}:
        return None
    if types <= {str, type(None)} and max(len(i) for i in ids if i is not None) <= MAX_ID_CHARS:
        return ids  # the common case, checked in one pass
    checked = []
    for i, value in enumerate(ids):
        parsed = valid_id(value)
        if isinstance(parsed, tuple):
            problems.append(Problem(i, name, parsed[0]))
            parsed = None
        checked.append(parsed)
    return checked


def passthrough(schema: Schema) -> set[str]:
    """Fields a row may carry besides the features: the id column, columns the schema excluded.

    They are accepted and never given to the model (the id is echoed and logged).
    """
    excluded: dict[str, str] = getattr(schema, "excluded", None) or {}
    return {*excluded, *([schema.id_column] if schema.id_column else [])}


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
    nan_missing: bool = False,
) -> np.ndarray:
    """Return one column as a typed array, adding a Problem for every bad value."""
    if refuses_null(col):
        _null_problems(col.name, values, problems)
    fast = _whole_column(col, values, nan_missing)
    if fast is not None:
        return fast
    checked = _value_by_value(col, rows, problems, nan_missing)
    if col.kind in ("numeric", "boolean"):
        return np.array(checked, dtype=float)
    if col.kind == "datetime":
        return np.array(
            [np.datetime64("NaT", "ns") if v is None else v.to_datetime64() for v in checked],
            dtype="datetime64[ns]",
        )
    return np.array(checked, dtype=object)


def _whole_column(
    col: ColumnSchema, values: list[Any], nan_missing: bool = False
) -> np.ndarray | None:
    """Convert a column of well-formed values in one step; None sends it value by value.

    The common case for large batches: numbers that are all numbers, strings that are all
    strings. Anything unusual (a missing field, a wrong type, NaN, an odd date) returns None,
    and the value-by-value check finds and names it.
    """
    kind = col.kind
    types = set(map(type, values))
    try:
        if kind == "numeric" and types <= {float, int, type(None)}:
            array = np.array(values, dtype=float)
            if np.isinf(array).any():
                return None  # Infinity: reported row by row
            if not nan_missing and np.isnan(array).sum() != values.count(None):
                return None  # a NaN literal: reported row by row
            return array
        if kind == "boolean" and types <= {bool, type(None)}:
            return np.array(values, dtype=float)
        if kind == "categorical" and types <= {str, type(None)}:
            return np.array(values, dtype=object)
        if kind == "datetime" and types <= {str, type(None)}:
            if len(values) <= _FEW_ROWS:
                return None  # one pandas call per value beats five over a tiny Series
            return _whole_dates(pd.Series(values, dtype=object), col.format)
    except (ValueError, TypeError, OverflowError, Warning):
        return None
    return None


def _whole_dates(values: pd.Series, fmt: str | None) -> np.ndarray | None:
    """Read a column of date strings in one format (ISO 8601, else the column's); None: mixed."""
    text = values.str.strip()
    present = text.dropna()
    if present.str.fullmatch(ISO_DATE).all():
        used = "ISO8601"
    elif fmt is not None and fmt != "ISO8601" and present.str.contains(r"\d").all():
        used = fmt
    else:
        return None  # another form, or formats mixed: each value is read and named alone
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dates = pd.to_datetime(text, format=used, utc=True).dt.tz_localize(None)
    return dates.to_numpy(dtype="datetime64[ns]")


def _value_by_value(
    col: ColumnSchema,
    rows: Sequence[Mapping[str, Any]],
    problems: list[Problem],
    nan_missing: bool = False,
) -> list[Any]:
    out: list[Any] = []
    for i, row in enumerate(rows):
        if col.name not in row:
            problems.append(Problem(i, col.name, "missing field"))
            out.append(None)
            continue
        value = row[col.name]
        if nan_missing and isinstance(value, float) and value != value:
            value = None  # the MLflow protocol's missing value (pandas writes NaN for it)
        if col.kind == "numeric":
            parsed: Any = _number(value)
        elif col.kind == "boolean":
            parsed = _boolean(value)
        elif col.kind == "datetime":
            parsed = _date(value, col.format)
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
    rows: Sequence[Any],
    schema: Schema,
    *,
    extra: str = "reject",
    max_rows: int = 10_000,
    nan_missing: bool = False,
) -> Batch:
    """Check submitted rows against the schema and return them as typed columns.

    Every feature is a required field. ``null`` is a missing value, which the pipeline imputes,
    except in a column declared ``nullable: false`` in ``data.columns`` (:func:`refuses_null`).
    Dates are ISO 8601 dates or date-times (an offset is converted to UTC), or in the format
    ingest read the column's training values in (``ColumnSchema.format``, e.g. ``%m/%d/%Y``);
    relative words such as ``today`` are refused.

    Parameters
    ----------
    rows
        One mapping of field → value per row.
    schema
        The model's training schema. Its id column and the columns it excluded are accepted
        besides the features (:func:`passthrough`); the id's values come back in ``Batch.ids``.
    extra
        ``reject`` fields the schema does not know, or ``ignore`` them.
    max_rows
        The most rows one request may carry.
    nan_missing
        Read a ``NaN`` number as a missing value in any column, as ``mlflow models serve``
        does (MLflow's clients send pandas' missing values as ``NaN``). Off: ``NaN`` is refused
        naming its row and field, and a missing value is ``null``.

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
    known = set(schema.names()) | passthrough(schema)
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
        col.name: _column(col, column, rows, problems, nan_missing)
        for col, column in zip(schema.features, values, strict=True)
    }
    ids = _ids(rows, schema.id_column, problems)
    if problems:
        raise InputError(problems[:20])
    return Batch(columns, _unknown_categories(columns, schema, len(rows)), ids)


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
        if n <= _FEW_ROWS:  # a few rows: plain Python is ten times faster than pandas here
            known = col.categories
            for i, value in enumerate(columns[col.name]):
                if value is not None and value == value and value not in known:
                    flags[i].append(col.name)
            continue
        values = pd.Series(columns[col.name], dtype=object, copy=False)
        unknown = values.notna().to_numpy() & ~values.isin(col.categories).to_numpy()
        for i in np.flatnonzero(unknown).tolist():
            flags[i].append(col.name)
    return flags


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
