from __future__ import annotations

import errno
import json
import time

import numpy as np
import pandas as pd

from server import predlog, segments
from server.predlog import PredictionLog
from tests.server.helpers import log_rows as rows
from tests.server.helpers import wait_for


def test_rotates_by_rows_and_flushes_the_rest_on_close(tmp_path):
    log = PredictionLog(tmp_path, flush_rows=10, flush_seconds=60, sync_seconds=0.05)
    log.start()
    log.append(rows(5, 0))
    log.append(rows(5, 5))
    assert wait_for(lambda: len(list(tmp_path.glob("part-*.parquet"))) == 1)  # 10 rows: a part
    log.append(rows(5, 10))
    time.sleep(0.3)
    assert len(list(tmp_path.glob("part-*.parquet"))) == 1  # 5 rows wait in their segment
    for start in (15, 20):
        log.append(rows(5, start))
    assert wait_for(lambda: len(list(tmp_path.glob("part-*.parquet"))) == 2)
    log.close()
    files = sorted(tmp_path.glob("part-*.parquet"))
    sizes = [len(pd.read_parquet(f)) for f in files]
    assert sizes[0] == 10 and sizes[1] >= 10 and sum(sizes) == 25
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

    monkeypatch.setattr(segments.pq, "write_table", full)
    log.append(rows(5, 5))
    assert wait_for(lambda: dropped == [5])
    log.close()
    files = list(tmp_path.glob("part-*.parquet"))
    assert len(files) == 1 and files[0].read_bytes() == good
    assert not list(tmp_path.glob(".*tmp"))


def good_and_bad_items():
    """Three good requests around three the writer cannot encode as they are."""
    return [
        rows(3, 0),
        [{"request_id": "surrogate", "x": 1.0, "city": "Z\ud800rich"}],
        rows(3, 3),
        [{"request_id": "object", "x": 2.0, "city": {"not": "text"}}],
        [{"request_id": "huge", "x": 3.0, "count": 10**30}],
        rows(3, 6),
    ]


def test_bad_rows_are_quarantined_and_never_cost_the_good_ones(tmp_path):
    dropped, rejected = [], []
    log = PredictionLog(
        tmp_path, flush_rows=1000, flush_seconds=60,
        on_drop=dropped.append, on_reject=rejected.append,
    )  # fmt: skip
    log.start()
    for item in good_and_bad_items():
        log.append(item)
    log.close()
    frame = pd.concat(pd.read_parquet(f) for f in sorted(tmp_path.glob("part-*.parquet")))
    kept = set(frame["request_id"])
    # every good row is kept; the surrogate is made valid text (escaped), not lost
    assert {r["request_id"] for r in rows(9)} | {"surrogate"} == kept
    assert frame.loc[frame["request_id"] == "surrogate", "city"].tolist() == ["Z\\ud800rich"]
    assert dropped == [] and sum(rejected) == 2
    rejects = [json.loads(line) for f in tmp_path.glob("rejects/*.jsonl") for line in f.open()]
    assert sorted(r["columns"]["request_id"][0] for r in rejects) == ["huge", "object"]
    assert all(r["error"] for r in rejects)


def test_a_request_that_breaks_the_table_costs_only_its_own_rows(tmp_path):
    """Many good requests in one buffer with a bad one in the middle: all the good ones stay."""
    rejected = []
    log = PredictionLog(tmp_path, flush_rows=100_000, flush_seconds=60, on_reject=rejected.append)
    for i in range(500):
        log.append(rows(10, i * 10))
        if i == 250:
            log.append({"request_id": np.array(["bad"], dtype=object),
                        "x": np.array([[1, 2]], dtype=object)})  # fmt: skip
    log.start()
    log.close()
    frame = pd.concat(pd.read_parquet(f) for f in tmp_path.glob("part-*.parquet"))
    assert len(frame) == 5000 and "bad" not in set(frame["request_id"])
    assert rejected == [1]


def test_parts_whose_column_types_clash_still_read_as_one_log(tmp_path):
    """Two processes (or models) logged ``x`` as a number and as text: every row reads, as text."""
    import pyarrow as pa

    from lib.core.contracts.predlog import read_log

    predlog.write_part(tmp_path, pa.table({"request_id": ["a", "b"], "x": [1.5, 2.0]}))
    predlog.write_part(tmp_path, pa.table({"request_id": ["c"], "x": ["red"]}))
    frame = read_log(tmp_path, request_id="b")
    assert frame["x"].tolist() == ["2"]
    assert sorted(read_log(tmp_path)["x"]) == ["1.5", "2", "red"]
