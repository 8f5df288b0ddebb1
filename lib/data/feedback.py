"""Ground truth for served predictions, joined to the prediction log by request id or by id.

Labels arrive two ways: posted to the server's ``/feedback`` route, which saves each post as a
Parquet file, or dropped by anyone as CSV/Parquet files into ``<data>/feedback/<model>/``. A label
file holds the target column and, per label, either ``request_id`` (with optionally ``row``, the
row's position in a batch request; 0 when absent) or the id column (``data.id_column``), whose
value the server logged with each row it served. A later label for the same row (or id) wins; a
label by request id and row wins over a label by id for the same logged row. A label by id labels
every logged row with that id (the monitor's quality over time), and the last of them for a
retrain (one training row per id). Ids that match no logged row are kept (their rows may still be
in the server's buffer) and counted by :func:`unmatched_ids`.

The monitor stage reads them with ``monitor.labels: feedback``; ``run_all.py --retrain`` turns the
labelled log rows into an extra raw table for the ingest stage (:func:`write_training_rows`).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from lib.core.atomic import atomic_path, sha256_file
from lib.core.contracts import predlog
from lib.core.errors import DataValidationError
from lib.core.layout import feedback_dir, predictions_dir, raw_dir
from lib.core.param_sections import CsvParams

KEY = list(predlog.KEY)  # a label's row in the prediction log


def label_files(folder: Path) -> list[Path]:
    """Return the label files in ``folder`` in name order (posts are named by time)."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in (".csv", ".parquet") and not p.name.startswith(".")
    )


def save_labels(folder: Path, labels: pd.DataFrame) -> Path:
    """Save posted labels as a new Parquet file in ``folder`` (atomically); return its path."""
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"post-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
    with atomic_path(path) as tmp:
        labels.to_parquet(tmp, index=False)
    return path


def load_labels(
    folder: Path, target: str, csv: CsvParams, id_column: str | None = None
) -> pd.DataFrame:
    """Return every label in ``folder``: ``request_id``, ``row``, the id column and ``target``.

    ``request_id`` is None for a label given by id, the id (as :func:`predlog.id_key` text)
    None for one given by request id; the last label for a row, or for an id, wins.

    Raises
    ------
    DataValidationError
        When a file lacks the target column, or both ``request_id`` and the id column (naming
        the file and the fix).
    """
    from lib.data.readers import read_table

    keys = ["request_id", *([id_column] if id_column else [])]
    frames = []
    for path in label_files(folder):
        frame = read_table(path, csv)
        missing = [] if any(k in frame.columns for k in keys) else [" or ".join(keys)]
        missing += [target] if target not in frame.columns else []
        if missing:
            raise DataValidationError(
                f"{path}: label files need column {' or '.join(keys)} (and optionally row) and "
                f"{target!r}; missing {missing}. Fix the file or remove it from {folder}",
                path=path,
                column=missing[0],
                check="label_columns",
            )
        frames.append(_label_frame(frame, target, id_column))
    if not frames:
        names = ["request_id", "row", *([id_column] if id_column else []), target]
        return pd.DataFrame({name: [] for name in names})
    labels = pd.concat(frames, ignore_index=True)
    by_request = labels[labels["request_id"].notna()].drop_duplicates(subset=KEY, keep="last")
    if not id_column:
        return by_request.reset_index(drop=True)
    by_id = labels[labels["request_id"].isna() & labels[id_column].notna()]
    by_id = by_id.drop_duplicates(subset=[id_column], keep="last")
    return pd.concat([by_request, by_id]).sort_index().reset_index(drop=True)


def _label_frame(frame: pd.DataFrame, target: str, id_column: str | None) -> pd.DataFrame:
    """One label file's labels, its key columns as the log stores them."""
    n = len(frame)
    request = frame["request_id"] if "request_id" in frame.columns else pd.Series([None] * n)
    request = request.set_axis(frame.index).astype(object)
    row = frame["row"] if "row" in frame.columns else 0
    out = pd.DataFrame(
        {
            "request_id": [None if pd.isna(v) else str(v) for v in request.tolist()],
            "row": pd.Series(row, index=frame.index).fillna(0).astype("int64"),
        }
    )
    if id_column:
        ids = frame[id_column] if id_column in frame.columns else pd.Series([None] * n)
        out[id_column] = predlog.id_keys(ids.set_axis(frame.index))
    out[target] = frame[target]
    return out


def log_labels(
    log: pd.DataFrame, labels: pd.DataFrame, target: str, id_column: str | None
) -> pd.Series:
    """Return each logged row's label (None where unknown), aligned with ``log``'s rows.

    By request id and row first; rows without such a label take the label of their id.
    """
    if log.empty or labels.empty:
        return pd.Series([None] * len(log), index=log.index, dtype=object)
    keys = log[KEY].assign(request_id=log["request_id"].astype(str), row=log["row"].astype("int64"))
    labels = labels.assign(**{target: labels[target].astype(object)})  # a miss adds no float
    by_request = labels[labels["request_id"].notna()][[*KEY, target]]
    found = keys.merge(by_request, on=KEY, how="left")[target].to_numpy(dtype=object)
    if id_column and id_column in log.columns and id_column in labels.columns:
        by_id = labels[labels["request_id"].isna()][[id_column, target]].dropna(subset=[id_column])
        ids = pd.DataFrame({id_column: predlog.id_keys(log[id_column])})
        from_id = ids.merge(by_id, on=id_column, how="left")[target].to_numpy(dtype=object)
        found = np.where(pd.isna(found), from_id, found)
    return pd.Series([None if pd.isna(v) else v for v in found], index=log.index, dtype=object)


def labelled_rows(
    log: pd.DataFrame, labels: pd.DataFrame, target: str, id_column: str | None
) -> pd.DataFrame:
    """Return the logged rows that have a label, as raw training rows.

    The served feature columns are kept, the label becomes the target column, and the log's own
    columns (request id, time, version, prediction, probabilities) are dropped. A label by id
    keeps the last logged row with that id. Where the id column was not served, the row key
    becomes ``<request_id>:<row>``.
    """
    if log.empty or labels.empty:
        return pd.DataFrame()
    label = log_labels(log, labels, target, id_column)
    keep = label.notna().to_numpy()
    rows, label = log[keep], label[keep]
    if id_column and id_column in rows.columns and id_column in labels.columns:
        keyed = labels[labels["request_id"].notna()]
        by_request = set(zip(keyed["request_id"], keyed["row"], strict=True))
        named = [
            (str(r), int(i)) in by_request
            for r, i in zip(rows["request_id"], rows["row"], strict=True)
        ]
        ids = predlog.id_keys(rows[id_column])
        # a label by id: the last logged row of that id (a label by request id keeps its row)
        last = ~ids.duplicated(keep="last") | ids.isna() | pd.Series(named, index=rows.index)
        rows, label = rows[last.to_numpy()], label[last.to_numpy()]
    out = rows.drop(columns=[c for c in rows.columns if predlog.is_log_column(c)])
    out = out.drop(columns=[target], errors="ignore")
    out[target] = label.to_numpy()
    if id_column:
        fallback = rows["request_id"].astype(str) + ":" + rows["row"].astype(str)
        served = out[id_column] if id_column in out.columns else pd.Series(None, index=out.index)
        ids = served.astype(object).where(served.notna(), fallback)
        out = out.drop(columns=[id_column], errors="ignore")
        out.insert(0, id_column, ids.to_numpy())
    return out.reset_index(drop=True)


def unmatched_ids(log_folder: Path, id_column: str, ids: list[str]) -> list[str]:
    """Return the ``ids`` that no row of the prediction log in ``log_folder`` carries (yet)."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    seen: set[str] = set()
    for path in predlog.log_files(log_folder):
        if id_column not in pq.read_schema(path).names:
            continue
        column = pq.read_table(path, columns=[id_column]).column(0).to_pylist()
        seen.update(v for v in column if v is not None)
    return [i for i in wanted if i not in seen]


def write_training_rows(
    data_dir: str | Path, model: str, target: str, id_column: str | None, csv: CsvParams
) -> Path | None:
    """Save the labelled log rows as an immutable raw table; return it (None: no labelled rows).

    The file is named by the hash of its content under ``<data>/raw/``, like the generator's files,
    so an unchanged log and unchanged labels give the same file (and the same ingest fingerprint).
    """
    labels = load_labels(feedback_dir(data_dir, model), target, csv, id_column)
    log = predlog.read_log(predictions_dir(data_dir, model))
    rows = labelled_rows(log, labels, target, id_column)
    if rows.empty:
        return None
    raw = raw_dir(data_dir)
    raw.mkdir(parents=True, exist_ok=True)
    tmp = raw / f".feedback-{uuid.uuid4().hex[:8]}.tmp"
    try:
        rows.to_parquet(tmp, index=False)
        final = raw / f"feedback-{model}-{sha256_file(tmp)[:16]}.parquet"
        if not final.exists():
            os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def labels_digest(data_dir: str | Path, model: str) -> str:
    """Hash the label files (names and bytes): what decides the labelled rows a retrain adds.

    The log itself is left out: it grows with every served request, labelled or not.
    """
    digest = hashlib.sha256()
    for p in label_files(feedback_dir(data_dir, model)):
        digest.update(f"{p.name}:{sha256_file(p)}".encode())
    return digest.hexdigest()[:16]
