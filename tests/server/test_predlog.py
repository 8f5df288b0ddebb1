from __future__ import annotations

import errno
import time

import pandas as pd

from server import predlog
from server.predlog import PredictionLog


def rows(n, start=0):
    return [{"request_id": f"r{i}", "x": float(i)} for i in range(start, start + n)]


def wait_for(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def test_rotates_by_rows_and_flushes_the_rest_on_close(tmp_path):
    log = PredictionLog(tmp_path, flush_rows=10, flush_seconds=60)
    log.start()
    for start in range(0, 25, 5):
        log.append(rows(5, start))
    assert wait_for(lambda: len(list(tmp_path.glob("part-*.parquet"))) == 2)
    log.close()
    files = sorted(tmp_path.glob("part-*.parquet"))
    assert [len(pd.read_parquet(f)) for f in files] == [10, 10, 5]
    combined = pd.concat([pd.read_parquet(f) for f in files])
    assert sorted(combined["request_id"]) == sorted(r["request_id"] for r in rows(25))
    assert not list(tmp_path.glob(".*tmp"))


def test_rotates_by_time(tmp_path):
    log = PredictionLog(tmp_path, flush_rows=1000, flush_seconds=0.1)
    log.start()
    log.append(rows(3))
    assert wait_for(lambda: len(list(tmp_path.glob("part-*.parquet"))) == 1)
    log.append(rows(2, 3))
    assert wait_for(lambda: len(list(tmp_path.glob("part-*.parquet"))) == 2)
    log.close()


def test_full_disk_drops_and_counts_but_keeps_earlier_files(tmp_path, monkeypatch):
    dropped = []
    log = PredictionLog(tmp_path, flush_rows=5, flush_seconds=60, on_drop=dropped.append)
    log.start()
    log.append(rows(5))
    assert wait_for(lambda: len(list(tmp_path.glob("part-*.parquet"))) == 1)
    good = next(tmp_path.glob("part-*.parquet")).read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(predlog.pq, "write_table", full)
    log.append(rows(5, 5))
    assert wait_for(lambda: dropped == [5])
    log.close()
    files = list(tmp_path.glob("part-*.parquet"))
    assert len(files) == 1 and files[0].read_bytes() == good
    assert not list(tmp_path.glob(".*tmp"))
