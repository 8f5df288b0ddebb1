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
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lib.core.atomic import atomic_path, sha256_file
from lib.core.contracts import predlog
from lib.core.errors import DataValidationError
from lib.core.layout import feedback_dir, predictions_dir, raw_dir
from lib.core.logs import get_logger
from lib.core.param_sections import CsvParams

KEY = list(predlog.KEY)  # a label's row in the prediction log
_logger = get_logger(__name__)


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
    found = log_index(log_folder, (predlog.REQUEST_ID, id_column)).known(id_column, wanted)
    return [i for i in wanted if i not in found]


_Segment = tuple[np.ndarray, np.ndarray]  # sorted key hashes, and the file each came from


def _hashes(values: Sequence[Any]) -> np.ndarray:
    """Return 64-bit hashes of keys (text), the same for the same key in every process."""
    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False)


class LogIndex:
    """Which part files of a prediction log hold a key (a request id, an id column's value).

    Built from the key columns of the part files only, never their rows, and kept up to date
    incrementally: each :meth:`refresh` reads just the part files written since the last one.
    Keys are held as 64-bit hashes in sorted arrays (12 bytes a key: a million requests
    in 12 MB, none of them Python objects); a hash collision only costs reading a file
    that does not hold the key, because rows are then read filtered by the key itself.

    Parameters
    ----------
    folder
        The model's prediction log folder.
    columns
        The key columns to index (``request_id``, and the id column when there is one).
    """

    def __init__(self, folder: Path, columns: Sequence[str] = (predlog.REQUEST_ID,)) -> None:
        self.folder = folder
        self.columns = tuple(columns)
        self._files: list[Path] = []
        self._names: set[str] = set()
        self._segments: dict[str, list[_Segment]] = {c: [] for c in self.columns}
        self._lock = threading.Lock()
        self._listed_at = -1  # the folder's mtime (ns) when last listed

    def _unchanged(self) -> bool:
        """Whether no file was added to the folder since it was last listed (one stat call).

        A folder changed within the last second is listed again: a file renamed into it in
        the same clock tick as the last listing leaves the mtime as it was.
        """
        try:
            mtime = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            return True  # nothing logged yet
        if mtime == self._listed_at and time.time_ns() - mtime > 1_000_000_000:
            return True
        self._listed_at = mtime
        return False

    def refresh(self) -> int:
        """Index the part files written since the last look; return how many there were."""
        with self._lock:
            if self._unchanged():
                return 0
            new = [p for p in _part_files(self.folder) if p.name not in self._names]
            keys: dict[str, list[_Segment]] = {c: [] for c in self.columns}
            for path in new:
                number = len(self._files)
                try:
                    table = _key_columns(path, self.columns)
                except FileNotFoundError:  # removed since it was listed
                    continue
                except (OSError, pa.ArrowException) as exc:  # unreadable: skipped, not retried
                    _logger.warning("log_part_unreadable", path=str(path), error=str(exc)[:200])
                    self._names.add(path.name)
                    continue
                self._files.append(path)
                self._names.add(path.name)
                for column in table.column_names:
                    hashes = _hashes(pc.unique(table[column].drop_null()).to_pylist())
                    keys[column].append((hashes, np.full(len(hashes), number, dtype=np.int32)))
            for column, parts in keys.items():
                if sum(len(hashes) for hashes, _ in parts):
                    self._add(column, parts)
            return len(new)

    def _add(self, column: str, parts: list[_Segment]) -> None:
        """Add new keys as a sorted segment; merge segments of similar size (log-many stay)."""
        segments = self._segments[column]
        segments.append(_sorted(parts))
        while len(segments) > 1 and len(segments[-2][0]) <= 2 * len(segments[-1][0]):
            segments[-2:] = [_sorted(segments[-2:])]

    def files(self, column: str, key: str) -> list[Path]:
        """Return the part files that may hold rows with ``key`` in ``column`` (refreshed)."""
        self.refresh()
        (wanted,) = _hashes([key])
        with self._lock:
            numbers: set[int] = set()
            for hashes, files in self._segments.get(column, []):
                low = np.searchsorted(hashes, wanted, side="left")
                high = np.searchsorted(hashes, wanted, side="right")
                numbers.update(files[low:high].tolist())
            return [self._files[n] for n in sorted(numbers) if self._files[n].exists()]

    def known(self, column: str, keys: Sequence[str]) -> set[str]:
        """Return the ``keys`` that some part file holds in ``column`` (refreshed).

        By hash: an unknown key that collides with a logged one (odds about 1 in 10^13 with a
        million keys logged) counts as known.
        """
        self.refresh()
        if not keys:
            return set()
        wanted = _hashes(keys)
        seen = np.zeros(len(keys), dtype=bool)
        with self._lock:
            for hashes, _ in self._segments.get(column, []):
                at = np.minimum(np.searchsorted(hashes, wanted), len(hashes) - 1)
                seen |= hashes[at] == wanted
        return {k for k, hit in zip(keys, seen.tolist(), strict=True) if hit}

    @property
    def parts(self) -> int:
        """Return how many part files are indexed."""
        return len(self._files)

    def nbytes(self) -> int:
        """Return the memory the key arrays take."""
        return sum(h.nbytes + f.nbytes for s in self._segments.values() for h, f in s)


def _part_files(folder: Path) -> list[Path]:
    """Return the log's part files in name order (one directory scan: no glob's walk)."""
    prefix, suffix = predlog.PART_GLOB.split("*")
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.name.startswith(prefix) and e.name.endswith(suffix)]
    return [folder / name for name in sorted(names)]


def _key_columns(path: Path, columns: tuple[str, ...]) -> pa.Table:
    """Read only the key columns of one part file (those it has: old files may lack the id)."""
    part = pq.ParquetFile(path)
    return part.read(columns=[c for c in columns if c in part.schema_arrow.names])


def _sorted(parts: Sequence[_Segment]) -> _Segment:
    hashes = np.concatenate([h for h, _ in parts])
    files = np.concatenate([f for _, f in parts])
    order = np.argsort(hashes, kind="stable")
    return hashes[order], files[order]


_INDEXES: dict[tuple[Path, tuple[str, ...]], LogIndex] = {}
_INDEXES_LOCK = threading.Lock()


def log_index(folder: Path, columns: Sequence[str] = (predlog.REQUEST_ID,)) -> LogIndex:
    """Return the process's index of the log in ``folder`` (built on first use, then kept)."""
    key = (Path(folder).resolve(), tuple(columns))
    with _INDEXES_LOCK:
        if key not in _INDEXES:
            _INDEXES[key] = LogIndex(Path(folder), columns)
        return _INDEXES[key]


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
