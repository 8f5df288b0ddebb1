"""The rows to replay: a file, a glob, or the generator's production batch; as JSON rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from lib.core.errors import ParamsError
from lib.core.layout import Layout
from lib.core.params import Params


def load_source(params: Params, source: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read the table to replay: CSV/Parquet files, or the generator's production batch.

    Parameters
    ----------
    params
        Gives ``data.csv`` for CSV files and, without ``source``, the generator settings.
    source
        A path or glob; ``None`` uses the generator's drifted production batch for ``params``
        (written to the raw data folder first if these parameters never wrote it).

    Returns
    -------
    tuple of (pandas.DataFrame, str)
        The rows in file order, and where they came from.

    Raises
    ------
    ParamsError
        Without ``source`` when the parameters define no production batch.
    DataValidationError
        When no file matches or a file cannot be read.
    """
    from lib.data.readers import expand_source, read_table

    if source is None:
        from lib.data.generator import generate

        if params.data.source != "generator":
            raise ParamsError(
                f"no file given and data.source is {params.data.source!r}: only the built-in "
                "generator has a production batch; pass a CSV/Parquet file to replay",
                key="data.source",
            )
        if params.generator.production.rows == 0:
            raise ParamsError(
                "no file given and generator.production.rows is 0; set it above 0 "
                "(-p generator.production.rows=5000) or pass a CSV/Parquet file",
                key="generator.production.rows",
            )
        paths = [
            generate(params.generator, params.project.seed, Layout.of(params).raw, production=True)
        ]
    else:
        paths = expand_source(source)
    frames = [read_table(p, params.data.csv, params.data.rename) for p in paths]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame, ";".join(str(p) for p in paths)


def request_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Return ``frame``'s rows as JSON-ready dicts of ``columns`` only.

    Missing values (NaN, NaT, None, pd.NA) become ``None``; dates become ISO strings; NumPy
    scalars become Python values. Infinity stays (the server rejects it, naming the row).

    Parameters
    ----------
    frame
        The table.
    columns
        The fields to send, in order; each must be a column of ``frame``.

    Returns
    -------
    list of dict
        One ``{field: value}`` per row.
    """
    values = [_json_values(frame[c]) for c in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def _json_values(column: pd.Series) -> list[Any]:
    missing = column.isna().to_numpy()
    return [None if gone else _plain(v) for v, gone in zip(column.tolist(), missing, strict=True)]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, datetime | date):  # pandas Timestamps are datetimes
        return value.isoformat()
    return value
