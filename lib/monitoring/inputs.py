"""The monitor's two sides: the reference it compares against, and the current rows.

The reference's rows are loaded by :mod:`lib.monitoring.reference_rows` (``monitor.reference``:
the champion's saved reference, the training rows, a file or a date range). The current rows come
from the generator's production batch, the server's prediction log, or files; with the model's
outputs on them, ground truth where known, and serving times for the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.core.contracts import predlog
from lib.core.errors import DataValidationError, ParamsError
from lib.core.layout import Layout
from lib.core.logs import get_logger
from lib.core.param_sections import MonitorParams
from lib.core.params import Params
from lib.core.paths import resolve
from lib.core.refspec import ReferenceKind
from lib.data.drift_profile import Profile
from lib.data.ingest import load_manifest
from lib.data.readers import expand_source, read_table
from lib.data.schema import Schema, coerce_column
from lib.model.reference import (
    drift_kind,
)

log = get_logger(__name__)

# the model: feature rows in, (predictions, probabilities or None) out
Scorer = Callable[[pd.DataFrame], tuple[Any, np.ndarray | None]]


@dataclass(frozen=True, kw_only=True)
class Reference:
    """The reference side: its rows (with predictions and, when known, the target) and profile.

    ``kind`` says how it was chosen (``monitor.reference``); ``warnings`` are sentences for the
    monitor's report and summary (what the reference lacks and what to do), also logged.
    """

    frame: pd.DataFrame
    profile: Profile
    source: str
    version: str | None = None
    kind: ReferenceKind = "champion"
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Current:
    """The current side: feature rows, their model outputs, truth when known, and times."""

    frame: pd.DataFrame
    source: str
    pred: np.ndarray
    proba: np.ndarray | None
    y: np.ndarray | None = None
    times: pd.Series | None = None
    versions: list[str] = field(default_factory=list)
    total_rows: int | None = None  # rows of the whole current data when ``frame`` is a sample

    @property
    def rows(self) -> int:
        """Rows of the whole current data (``frame`` holds them all, or a sample of them)."""
        return len(self.frame) if self.total_rows is None else self.total_rows


def drift_kinds(schema: Schema, params: MonitorParams) -> dict[str, Any]:
    """Columns to check for drift and how: numeric, or categorical (categories and booleans).

    Date columns are left out unless named in ``monitor.columns`` (a later batch always has later
    dates; Evidently leaves them out too).
    """
    names = schema.names()
    wanted = params.columns if params.columns is not None else names
    unknown = sorted(set(wanted) - set(names)) + sorted(set(params.exclude) - set(names))
    if unknown:
        raise ParamsError(
            f"monitor.columns/exclude: {unknown} are not model features; the features are {names}",
            key="monitor.columns",
        )
    keys = params.alerts.key_features
    unknown_keys = sorted(set(keys if keys != "auto" else []) - set(names))
    if unknown_keys:
        raise ParamsError(
            f"monitor.alerts.key_features: {unknown_keys} are not model features; the features "
            f"are {names}",
            key="monitor.alerts.key_features",
        )
    kinds: dict[str, Any] = {}
    for name in wanted:
        kind = schema.column(name).kind
        if name in params.exclude or (kind == "datetime" and params.columns is None):
            continue
        kinds[name] = drift_kind(kind)
    return kinds


def conform(frame: pd.DataFrame, schema: Schema, path: Path) -> pd.DataFrame:
    """Return ``frame`` with the schema's columns parsed into their canonical dtypes."""
    missing = [n for n in schema.names() if n not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{path}: columns {missing} are missing; current data must hold every model feature "
            f"({schema.names()})",
            path=path,
            column=missing[0],
            check="missing_columns",
        )
    out = frame.copy()
    for col in schema.features:
        out[col.name] = coerce_column(frame[col.name], col.kind, col.name, path, col.format)
    if schema.target in frame.columns:
        out[schema.target] = align_target(frame[schema.target], schema, path)
    return out


def _label_text(value: object) -> str:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else str(value)
    return str(value)


def align_target(values: pd.Series, schema: Schema, path: Path) -> pd.Series:
    """Truth values as the model's classes (``1``, ``1.0`` and ``"1"`` are class ``1``)."""
    if schema.task == "regression" or not schema.classes:
        return coerce_column(values, "numeric", schema.target, path)
    # one spelling per class: the float class 1.0, the label 1 and the text "1" are one class
    lookup = {_label_text(c): c for c in schema.classes}
    text = values.map(_label_text, na_action="ignore")
    unknown = text.notna() & ~text.isin(list(lookup))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DataValidationError(
            f"{path}: target {schema.target!r} row {row + 1:,}: {text.iloc[row]!r} is not one of "
            f"the model's classes {schema.classes}; fix the label or retrain with that class",
            path=path,
            row=row + 1,
            column=schema.target,
            check="unknown_class",
        )
    return text.map(lookup).astype(object)


def read_files(paths: list[Path], params: Params, schema: Schema) -> pd.DataFrame:
    """Read and conform the CSV/Parquet ``paths`` into one frame of the schema's columns."""
    frames = [conform(read_table(p, params.data.csv, params.data.rename), schema, p) for p in paths]
    return pd.concat(frames, ignore_index=True)


def time_column(params: Params, schema: Schema) -> str | None:
    """Return the data's time column: ``monitor.time_column``, else the first date feature."""
    if params.monitor.time_column:
        return params.monitor.time_column
    if schema.date_column:
        return schema.date_column
    dates = schema.names("datetime")
    return dates[0] if dates else None


def in_time_order(frame: pd.DataFrame, column: str | None) -> pd.DataFrame:
    """Return ``frame`` sorted by ``column`` (stable), when it has that column."""
    if column is None or column not in frame.columns:
        return frame
    return frame.sort_values(column, kind="stable", ignore_index=True)


def parse_times(values: pd.Series, column: str, where: str) -> pd.Series:
    """Return ``values`` as tz-naive UTC timestamps (NaT where missing)."""
    try:
        times = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as exc:
        raise DataValidationError(
            f"{where}: column {column!r} is not a date or time ({exc}); set monitor.time_column "
            "to a date column",
            column=column,
            check="wrong_type",
        ) from None
    return times.dt.tz_localize(None)


def log_parts(params: Params, model: str) -> tuple[Path, list[Path]]:
    """Return the model's log folder and its files (failing when nothing was logged)."""
    folder = Layout.of(params, model=model).predictions
    files = predlog.log_files(folder)
    if not files:
        raise DataValidationError(
            f"{folder}: the prediction log is empty; serve some predictions first (make serve), "
            "or set monitor.current to a CSV/Parquet file",
            path=folder,
            check="missing_file",
        )
    return folder, files


def empty_window(params: Params, folder: Path) -> DataValidationError:
    """Return the error of a log with no row between ``monitor.since`` and ``monitor.until``."""
    m = params.monitor
    return DataValidationError(
        f"{folder}: no logged predictions between monitor.since={m.since} and "
        f"monitor.until={m.until}; widen the time range",
        path=folder,
        check="empty_window",
    )


def _read_log(params: Params, model: str) -> pd.DataFrame:
    """Return the logged rows in the ``monitor.since``/``until`` window, oldest first."""
    folder, _ = log_parts(params, model)
    m = params.monitor
    frame = predlog.read_log(folder, since=m.since, until=m.until, by_time=True)
    if frame.empty:
        raise empty_window(params, folder)
    return frame


def current_paths(params: Params) -> list[Path]:
    """Return the files ``monitor.current`` names: the production batch, penguins, or files."""
    spec = params.monitor_current()
    if spec == "production":
        batch = load_manifest(params).production_batch
        if not batch:
            raise ParamsError(
                "monitor.current is 'production' but the ingest stage wrote no production batch "
                "(data.source must be 'generator' with generator.production.rows > 0); set "
                "monitor.current to 'log' or to a CSV/Parquet file",
                key="monitor.current",
            )
        return [Path(batch)]
    if spec == "penguins":  # as data.source: the table the palmerpenguins package ships
        from lib.data.readers import penguins_csv

        return [penguins_csv()]
    return expand_source(str(resolve(spec)))


def _current_frame(params: Params, schema: Schema, model: str) -> tuple[pd.DataFrame, str]:
    if params.monitor_current() == "log":
        return _read_log(params, model), "log"
    paths = current_paths(params)
    return read_files(paths, params, schema), ";".join(str(p) for p in paths)


def _read_labels(params: Params, schema: Schema) -> tuple[pd.DataFrame, Path]:
    """Return the label table ``monitor.labels`` names (the feedback folder, or a file)."""
    labels = params.monitor.labels
    if labels == "feedback":  # posted to the server or dropped in its folder (lib.data.feedback)
        from lib.data import feedback

        path = Layout.of(params).feedback
        id_column = schema.id_column or params.data.id_column
        return feedback.load_labels(path, schema.target, params.data.csv, id_column), path
    path = resolve(str(labels))
    return read_table(path, params.data.csv, params.data.rename), path


def _label_key(params: Params, labels: pd.DataFrame, from_log: bool) -> list[str]:
    """Return the columns a label file joins by: ``monitor.label_key``, else the id column.

    On the prediction log, the id column when the file has it (the server logs each row's id),
    else the request id and row.
    """
    m, id_column = params.monitor, params.data.id_column
    if m.label_key:
        return list(m.label_key)
    if from_log and not (id_column and id_column in labels.columns):
        return list(predlog.KEY)
    return [id_column or ""]


def _labels(
    params: Params, schema: Schema, frame: pd.DataFrame, from_log: bool
) -> np.ndarray | None:
    """Ground truth aligned with ``frame`` (NaN/None where unknown), or None."""
    m = params.monitor
    if m.labels is None:
        return frame[schema.target].to_numpy() if schema.target in frame.columns else None
    labels, path = _read_labels(params, schema)
    if m.labels == "feedback" and not m.label_key and all(k in frame for k in predlog.KEY):
        from lib.data import feedback

        id_column = schema.id_column or params.data.id_column
        labels = labels.assign(**{schema.target: align_target(labels[schema.target], schema, path)})
        return feedback.log_labels(frame, labels, schema.target, id_column).to_numpy()
    key = list(predlog.KEY) if m.labels == "feedback" and not m.label_key else None
    key = key or _label_key(params, labels, from_log)
    missing = [c for c in [*key, schema.target] if c not in labels.columns]
    if missing or any(k not in frame.columns for k in key):
        where = path if missing else "current data"
        raise DataValidationError(
            f"{where}: label join columns {key} (and {schema.target!r} in the labels) are "
            f"required; missing {missing or [k for k in key if k not in frame.columns]}; set "
            "monitor.label_key",
            path=path,
            column=(missing or key)[0],
            check="label_key",
        )
    left, labels = frame[key], labels[[*key, schema.target]]
    id_column = params.data.id_column
    if id_column in key:  # ids are joined as the log stores them: text (17, 17.0, "17" alike)
        left = left.assign(**{id_column: predlog.id_keys(left[id_column])})
        labels = labels.assign(**{id_column: predlog.id_keys(labels[id_column])})
    labels = labels.dropna(subset=key).drop_duplicates(subset=key, keep="last")
    labels = labels.assign(**{schema.target: align_target(labels[schema.target], schema, path)})
    joined = left.merge(labels, on=key, how="left")
    return joined[schema.target].to_numpy()


def load_current(params: Params, schema: Schema, model: str, scorer: Scorer) -> Current:
    """Return the current rows with model outputs, labels and times, windowed as configured."""
    frame, source = _current_frame(params, schema, model)
    if params.monitor.window_rows is not None:
        frame = frame.tail(params.monitor.window_rows).reset_index(drop=True)
    return current_of(params, schema, frame, source, scorer)


def current_of(
    params: Params,
    schema: Schema,
    frame: pd.DataFrame,
    source: str,
    scorer: Scorer,
    total_rows: int | None = None,
) -> Current:
    """Return the current side of ``frame`` (the log's rows, or conformed file rows)."""
    y = _labels(params, schema, frame, from_log=source == "log")
    if source != "log":  # files: row order is time order
        pred, proba = scorer(frame[schema.names()])
        return Current(
            frame=frame, source=source, pred=np.asarray(pred), proba=proba, y=y,
            total_rows=total_rows,
        )  # fmt: skip
    names = [predlog.proba_column(c) for c in schema.classes or []]
    logged = names and all(n in frame for n in names)
    return Current(
        frame=frame,
        source=source,
        pred=frame[predlog.PREDICTION].to_numpy(),
        proba=frame[names].to_numpy(float) if logged else None,
        y=y,
        times=frame[predlog.TIME],
        versions=sorted(frame[predlog.MODEL_VERSION].astype(str).unique().tolist()),
        total_rows=total_rows,
    )
