"""Ground truth for served predictions, joined to the prediction log by request id.

Labels arrive two ways: posted to the server's ``/feedback`` route, which saves each post as a
Parquet file, or dropped by anyone as CSV/Parquet files into ``<data>/feedback/<model>/``. A label
file holds ``request_id``, optionally ``row`` (the row's position in a batch request; 0 when
absent) and the target column. A later label for the same row wins.

The monitor stage reads them with ``monitor.labels: feedback``; ``run_all.py --retrain`` turns the
labelled log rows into an extra raw table for the ingest stage (:func:`write_training_rows`).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pandas as pd

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


def load_labels(folder: Path, target: str, csv: CsvParams) -> pd.DataFrame:
    """Return every label in ``folder``: ``request_id``, ``row`` and ``target``, last one wins.

    Raises
    ------
    DataValidationError
        When a file lacks ``request_id`` or the target column (naming the file and the fix).
    """
    from lib.data.readers import read_table

    frames = []
    for path in label_files(folder):
        frame = read_table(path, csv)
        missing = [c for c in ("request_id", target) if c not in frame.columns]
        if missing:
            raise DataValidationError(
                f"{path}: label files need columns request_id and {target!r} (and optionally "
                f"row); missing {missing}. Fix the file or remove it from {folder}",
                path=path,
                column=missing[0],
                check="label_columns",
            )
        row = frame["row"] if "row" in frame.columns else 0
        frames.append(
            pd.DataFrame(
                {
                    "request_id": frame["request_id"].astype(str),
                    "row": pd.Series(row, index=frame.index).fillna(0).astype("int64"),
                    target: frame[target],
                }
            )
        )
    if not frames:
        return pd.DataFrame({"request_id": [], "row": [], target: []})
    labels = pd.concat(frames, ignore_index=True)
    return labels.drop_duplicates(subset=KEY, keep="last").reset_index(drop=True)


def labelled_rows(
    log: pd.DataFrame, labels: pd.DataFrame, target: str, id_column: str | None
) -> pd.DataFrame:
    """Return the logged rows that have a label, as raw training rows.

    The served feature columns are kept, the label becomes the target column, and the log's own
    columns (request id, time, version, prediction, probabilities) are dropped. When the id
    column was not served, the row key becomes ``<request_id>:<row>``.
    """
    if log.empty or labels.empty:
        return pd.DataFrame()
    log = log.assign(request_id=log["request_id"].astype(str), row=log["row"].astype("int64"))
    joined = log.merge(labels, on=KEY, how="inner", suffixes=("", "_label"))
    label_column = f"{target}_label" if target in log.columns else target
    out = joined.drop(columns=[c for c in joined.columns if predlog.is_log_column(c)])
    if label_column != target:
        out = out.drop(columns=[target]).rename(columns={label_column: target})
    if id_column and id_column not in out.columns:
        out.insert(0, id_column, joined["request_id"] + ":" + joined["row"].astype(str))
    return out.reset_index(drop=True)


def write_training_rows(
    data_dir: str | Path, model: str, target: str, id_column: str | None, csv: CsvParams
) -> Path | None:
    """Save the labelled log rows as an immutable raw table; return it (None: no labelled rows).

    The file is named by the hash of its content under ``<data>/raw/``, like the generator's files,
    so an unchanged log and unchanged labels give the same file (and the same ingest fingerprint).
    """
    labels = load_labels(feedback_dir(data_dir, model), target, csv)
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
