"""Segments of the prediction log: append-only Arrow IPC files that survive a crash.

A segment holds the rows a :class:`~server.predlog.PredictionLog` committed since its last
Parquet part. It is locked (``flock``) by the process writing it, so :func:`recover` - run when a
log starts - turns into parts only the segments that crashed processes left behind. Parts are
written under a temporary name and renamed (:func:`write_part`): readers never see half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from pathlib import Path
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lib.core.contracts import predlog
from lib.core.logs import get_logger

log = get_logger(__name__)
SEGMENTS = "segments"
SEGMENT_GLOB = "segment-*.arrows"


def write_part(folder: Path, table: pa.Table, *, fsync: bool = False, stamp: str = "") -> Path:
    """Write ``table`` as a new ``part-<time>-<id>.parquet`` (temporary name, then renamed).

    With ``fsync`` the file and the rename are on disk when this returns.
    """
    stamp = stamp or pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%f")
    final = folder / predlog.PART_GLOB.replace("*", f"{stamp}-{uuid.uuid4().hex[:6]}")
    tmp = final.with_name(f".{final.name}.tmp")
    try:
        pq.write_table(table, tmp)
        if fsync:
            fsync_file(tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        fsync_file(folder)
    return final


def fsync_file(path: Path) -> None:
    """Flush a file (or a folder: its entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Segment:
    """An append-only Arrow IPC stream of committed rows, locked by the process writing it.

    Written through a native Arrow file: a batch goes to the kernel without re-entering Python
    for each buffer. (Through a Python file object every buffer waited for the GIL, which the
    serving threads hold: under load a batch took longer to write than the sync interval, so a
    kill -9 nearly always found it torn and recovered nothing.)
    """

    def __init__(self, path: Path, lock_fd: int, schema: pa.Schema) -> None:
        self.path, self.lock_fd, self.schema = path, lock_fd, schema
        self.file = pa.OSFile(str(path), "ab")
        self.writer = pa.ipc.new_stream(self.file, schema)

    @classmethod
    def open(cls, folder: Path, schema: pa.Schema) -> Segment:
        """Open a new segment, named for this process (pid and a random part)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / SEGMENT_GLOB.replace("*", f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if we crash
            return cls(path, fd, schema)
        except BaseException:
            os.close(fd)
            raise

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s record batches to the stream."""
        self.writer.write_table(table)

    def sync(self, fsync: bool) -> None:
        """Hand the written batches to the operating system (and to the disk with ``fsync``).

        The native file is unbuffered: each write is already the kernel's. ``fsync`` on the
        lock's descriptor flushes the file, whichever descriptor wrote it.
        """
        if fsync:
            os.fsync(self.lock_fd)

    def close(self, delete: bool) -> None:
        """End the stream, close the file and its lock; ``delete`` removes the segment."""
        with contextlib.suppress(OSError, pa.ArrowException):
            self.writer.close()
        with contextlib.suppress(OSError, pa.ArrowException):
            self.file.close()
        if delete:
            self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.close(self.lock_fd)


def recover(folder: Path, *, fsync: bool = False) -> int:
    """Turn the segments that crashed processes left in ``folder`` into Parquet parts.

    A segment still locked by a live process is left alone; a torn last batch is dropped. Each
    recovered segment is deleted once its part is written (kept when that fails: a full disk).

    Returns
    -------
    int
        The number of rows recovered.
    """
    recovered = 0
    for path in sorted((folder / SEGMENTS).glob(SEGMENT_GLOB)):
        try:
            file = path.open("rb")
        except FileNotFoundError:  # its owner rotated it since the listing
            continue
        with file:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process writes it now
                continue
            if not _still_listed(path, file):  # rotated while we waited for the lock
                continue
            batches, torn = _read_batches(file)
            if batches:
                stamp = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")
                table = pa.Table.from_batches(batches)
                try:
                    write_part(folder, table, fsync=fsync, stamp=stamp.strftime("%Y%m%dT%H%M%S%f"))
                except OSError as exc:  # a full disk: keep the segment for the next start
                    log.error("prediction_log_recovery_failed", segment=path.name, error=str(exc))
                    continue
                recovered += table.num_rows
            log.info("prediction_log_recovered", segment=path.name, rows=sum(map(len, batches)),
                     torn_tail=torn)  # fmt: skip
            path.unlink()
    return recovered


def _still_listed(path: Path, file: IO[bytes]) -> bool:
    """Whether ``path`` still names the open ``file``.

    An owner deletes its segment before it lets go of the lock: a segment we lock after its
    owner rotated it is no longer listed, and its rows are in a part already.
    """
    try:
        return os.stat(path).st_ino == os.fstat(file.fileno()).st_ino
    except FileNotFoundError:
        return False


def open_values(folder: Path, column: str) -> set[str]:
    """Return the values of ``column`` (as id text) that the open segments in ``folder`` hold.

    Rows other processes committed and have not rotated into parts yet: under several workers,
    a label may come to one worker for a request another served moments ago. Read without
    locking; a batch being written is not read.
    """
    values: set[str] = set()
    for path in (folder / SEGMENTS).glob(SEGMENT_GLOB):
        try:
            with path.open("rb") as file:
                batches, _ = _read_batches(file)
        except FileNotFoundError:  # rotated meanwhile: its rows are in a part now
            continue
        for batch in batches:
            if column in batch.schema.names:
                found = batch.column(column).to_pylist()
                values.update(k for k in map(predlog.id_key, found) if k is not None)
    return values


def _read_batches(file: IO[bytes]) -> tuple[list[pa.RecordBatch], bool]:
    """Every whole record batch of a segment, and whether it ended in a torn one."""
    try:
        reader = pa.ipc.open_stream(file)
    except (pa.ArrowInvalid, OSError):  # crashed before its schema was written
        return [], True
    batches = []
    while True:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            return batches, False
        except (pa.ArrowInvalid, OSError):
            return batches, True
