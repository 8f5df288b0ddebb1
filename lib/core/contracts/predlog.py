"""The prediction log: one row per served row, in ``<data_dir>/predictions/<model>/part-*.parquet``.

The server writes it (:func:`log_columns` builds a request's columns; a background writer appends
them as new ``part-<time>-<id>.parquet`` files); the monitor stage, the feedback join and the
lineage of a request read it (:func:`read_log`). Each row holds the served feature columns as
sent, then:

=====================  =====================================================================
``request_id``         the request's id (the ``x-request-id`` response header)
``row``                the row's position in its request (0-based)
``time``               when it was served (UTC timestamp)
``model_version``      the registered model version that scored it
``prediction``         the predicted class or value
``proba_<class>``      the predicted probability of each class (classification)
=====================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REQUEST_ID = "request_id"
ROW = "row"
TIME = "time"
MODEL_VERSION = "model_version"
PREDICTION = "prediction"
PROBA_PREFIX = "proba_"
KEY = (REQUEST_ID, ROW)  # what identifies a served row (and joins its label)
LOG_COLUMNS = (REQUEST_ID, ROW, TIME, MODEL_VERSION, PREDICTION)  # beside features and probas
PART_GLOB = "part-*.parquet"


def proba_column(label: object) -> str:
    """Return the name of the column holding the predicted probability of class ``label``."""
    return f"{PROBA_PREFIX}{label}"


def is_log_column(name: str) -> bool:
    """Whether ``name`` is one of the log's own columns (not a served feature)."""
    return name in LOG_COLUMNS or name.startswith(PROBA_PREFIX)


def log_columns(
    features: Mapping[str, Any],
    *,
    request_id: str,
    model_version: str | None,
    prediction: np.ndarray,
    proba: np.ndarray | None = None,
    classes: Sequence[object] | None = None,
    now: pd.Timestamp | None = None,
) -> dict[str, Any]:
    """Return one request's log rows as columns: the features, then the log's own columns.

    Parameters
    ----------
    features
        The served feature columns (equal-length arrays), as the model received them.
    request_id, model_version
        The request's id and the version that scored it.
    prediction, proba, classes
        The model's outputs; ``proba`` (rows x classes, in ``classes`` order) may be None.
    now
        The serving time (default: now; naive times are UTC); stored as naive UTC
        ``datetime64[ns]``, which the log writer turns into a UTC timestamp.
    """
    n = len(prediction)
    stamp = _utc(pd.Timestamp.now(tz="UTC") if now is None else now).tz_localize(None)
    table: dict[str, Any] = dict(features)
    table[REQUEST_ID] = np.full(n, request_id, dtype=object)
    table[ROW] = np.arange(n)
    table[TIME] = np.full(n, np.datetime64(stamp, "ns"))
    table[MODEL_VERSION] = np.full(n, model_version, dtype=object)
    table[PREDICTION] = prediction
    if proba is not None and classes is not None:
        for j, label in enumerate(classes):
            table[proba_column(label)] = proba[:, j]
    return table


def log_files(folder: Path) -> list[Path]:
    """Return the log's files in ``folder`` in name order (names start with the write time)."""
    return sorted(folder.glob(PART_GLOB))


def _utc(bound: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(bound)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def read_log(
    folder: Path,
    *,
    since: str | pd.Timestamp | None = None,
    until: str | pd.Timestamp | None = None,
    request_id: str | None = None,
    by_time: bool = False,
) -> pd.DataFrame:
    """Return the logged rows in ``folder`` (empty when nothing was logged).

    Parameters
    ----------
    folder
        The model's log folder (``Layout.predictions``).
    since, until
        Keep rows served at or after ``since`` and before ``until`` (naive times are UTC).
    request_id
        Keep only that request's rows.
    by_time
        Sort by ``time``, ``request_id`` and ``row``; else the rows come as written, file by
        file.

    Returns
    -------
    pandas.DataFrame
        The rows kept; files are read filtered, so memory holds only those.
    """
    files = log_files(folder)
    if not files:
        return pd.DataFrame()
    import pyarrow.dataset as ds

    tests = []
    if since is not None:
        tests.append(ds.field(TIME) >= _utc(since))
    if until is not None:
        tests.append(ds.field(TIME) < _utc(until))
    if request_id is not None:
        tests.append(ds.field(REQUEST_ID) == request_id)
    where = None
    for test in tests:
        where = test if where is None else where & test
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    frame: pd.DataFrame = dataset.to_table(filter=where).to_pandas()
    if frame.empty or not by_time:
        return frame
    ordered: pd.DataFrame = frame.sort_values(
        [TIME, REQUEST_ID, ROW], kind="stable", ignore_index=True
    )
    return ordered
