"""Drift of Parquet files read in batches equals the in-memory check (lib/monitoring/stream.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.core.errors import DataValidationError
from lib.data.drift import check_drift
from lib.data.drift_profile import build_profile
from lib.monitoring.stream import Windows, stream_drift

KINDS = {"x": "numeric", "y": "numeric", "few": "numeric", "c": "categorical"}


def frame(rows: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "x": rng.normal(shift, 1, rows),
            "y": rng.exponential(1 + shift, rows),
            "few": rng.integers(0, 4, rows).astype(float),
            "c": rng.choice(["a", "b", "c"], rows, p=[0.5 - shift / 4, 0.3, 0.2 + shift / 4]),
            "day": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(rows) // 500, "D"),
        }
    )
    out.loc[out.index[::97], "x"] = np.nan
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("current")
    current = pd.concat([frame(24_000, 0.0, 1), frame(36_000, 0.4, 2)], ignore_index=True)
    paths = []
    for i, part in enumerate(np.array_split(np.arange(len(current)), 5)):
        path = folder / f"part-{i}.parquet"
        current.iloc[part].to_parquet(path)
        paths.append(path)
    profile = build_profile(frame(5_000, 0.0, 0), KINDS)
    return profile, current, paths


def same(got, want) -> None:
    assert [c.column for c in got.columns] == [c.column for c in want.columns]
    for g, w in zip(got.columns, want.columns, strict=True):
        assert (g.method, g.drifted, g.current_rows) == (w.method, w.drifted, w.current_rows)
        assert g.current_missing == pytest.approx(w.current_missing)
        rel = 2e-3 if g.method == "wasserstein" else 1e-9
        assert g.score == pytest.approx(w.score, rel=rel, abs=1e-300), g.column
    assert got.dataset_drift == want.dataset_drift


def test_overall_and_row_windows_equal_the_in_memory_check(data):
    profile, current, paths = data
    result = stream_drift(paths, profile, windows=Windows(rows=20_000), batch_rows=7_000)
    same(result.overall, check_drift(profile, current))
    assert sorted(result.windows) == [0, 1, 2] and result.rows == 60_000
    for key, report in result.windows.items():
        rows = current.iloc[key * 20_000 : (key + 1) * 20_000]
        same(report, check_drift(profile, rows))
    assert not result.windows[0].columns[0].drifted and result.windows[2].dataset_drift


def test_date_windows_equal_the_in_memory_check_per_period(data):
    profile, current, paths = data
    result = stream_drift(
        paths, profile, columns=["x", "c"], windows=Windows(date_column="day", period="M"),
        methods={"x": "ks"},
    )  # fmt: skip
    months = current["day"].dt.to_period("M").astype(str)
    assert sorted(result.windows) == sorted(months.unique())
    for key, report in result.windows.items():
        same(report, check_drift(profile, current[months == key], columns=["x", "c"],
                                 methods={"x": "ks"}))  # fmt: skip


def test_a_missing_column_is_named_before_any_work(data, tmp_path):
    profile, current, _ = data
    path = tmp_path / "bad.parquet"
    current.drop(columns=["c"]).head(10).to_parquet(path)
    with pytest.raises(DataValidationError, match=r"bad.parquet: column 'c' is missing"):
        stream_drift([path], profile)


@pytest.mark.slow
def test_dask_gives_the_same_verdicts(data):
    profile, _, paths = data
    windows = Windows(rows=20_000)
    since = pd.Timestamp("2026-01-05", tz="UTC")  # a time range, so offsets count kept rows
    common = {"windows": windows, "sample_rows": 5_000, "time_column": "day", "since": since,
              "seed": 7, "distinct": ["c"]}  # fmt: skip
    local = stream_drift(paths, profile, **common)
    remote = stream_drift(paths, profile, backend="dask", workers=2, **common)
    same(remote.overall, local.overall)
    for key in local.windows:
        same(remote.windows[key], local.windows[key])
    # the same sample (each file sends only keys under a cut that keeps the global 5,000)
    assert local.sample is not None and remote.sample is not None and len(local.sample) == 5_000
    pd.testing.assert_frame_equal(remote.sample, local.sample)
    assert np.array_equal(remote.positions, local.positions) and remote.distinct == local.distinct


def damaged(path, tmp_path):
    """A copy of ``path`` whose data pages are overwritten (its footer, the schema, intact)."""
    raw = bytearray(path.read_bytes())
    third = len(raw) // 3
    raw[4:third] = bytes(range(256)) * ((third - 4) // 256) + b"\0" * ((third - 4) % 256)
    out = tmp_path / "damaged.parquet"
    out.write_bytes(bytes(raw))
    return out


def test_a_damaged_file_is_named(data, tmp_path):
    profile, _, paths = data
    bad = damaged(paths[1], tmp_path)
    with pytest.raises(DataValidationError, match=r"damaged.parquet: cannot read its rows"):
        stream_drift([paths[0], bad], profile)


@pytest.mark.slow
def test_on_dask_a_damaged_file_fails_the_run_naming_it(data, tmp_path):
    profile, _, paths = data
    bad = damaged(paths[1], tmp_path)
    with pytest.raises(DataValidationError) as caught:
        stream_drift([*paths, bad], profile, backend="dask", workers=2)
    assert "damaged.parquet: cannot read its rows" in caught.value.message
    assert "on the Dask cluster; nothing was saved" in caught.value.message


@pytest.mark.slow
def test_a_dask_worker_lost_mid_run_is_replaced_and_the_result_unchanged(data, tmp_path):
    import os
    import signal
    import threading
    import time

    from dask.distributed import Client, LocalCluster

    profile, current, _ = data
    many = []
    for i in range(12):  # enough work that a worker is still busy when it is killed
        path = tmp_path / f"part-{i}.parquet"
        current.to_parquet(path)
        many.append(path)
    windows = Windows(rows=50_000)
    want = stream_drift(many, profile, windows=windows)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                           dashboard_address=None)  # fmt: skip
    client = Client(cluster)
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    try:
        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        got = stream_drift(many, profile, windows=windows, backend="dask",
                           scheduler=cluster.scheduler_address)  # fmt: skip
        killer.join()
    finally:
        client.close()
        cluster.close()
    assert killed  # a worker died mid-run
    same(got.overall, want.overall)
    assert list(got.windows) == list(want.windows)
    for key in want.windows:
        same(got.windows[key], want.windows[key])


def test_the_sample_is_uniform_distinct_in_order_and_seeded(data):
    profile, current, paths = data
    got = stream_drift(paths, profile, sample_rows=5_000, seed=3, batch_rows=7_000)
    again = stream_drift(paths, profile, sample_rows=5_000, seed=3, batch_rows=7_000)
    other = stream_drift(paths, profile, sample_rows=5_000, seed=4, batch_rows=7_000).sample
    one, positions = got.sample, got.positions
    assert one is not None and positions is not None and other is not None
    assert len(one) == 5_000 and list(one.columns) == list(current.columns)
    pd.testing.assert_frame_equal(one, again.sample)  # seeded per file and batch number...
    assert not one.equals(other)  # ...and by the seed
    # distinct rows of the data, in file order, each at its own position
    assert (np.diff(positions) > 0).all()
    rows = current.reset_index(drop=True)
    pd.testing.assert_frame_equal(one, rows.iloc[positions].reset_index(drop=True))
    assert one["c"].value_counts(normalize=True)["a"] == pytest.approx(
        rows["c"].value_counts(normalize=True)["a"], abs=0.03
    )
    assert got.distinct == {}
    everything = stream_drift(paths, profile, sample_rows=100_000, distinct=["c"])
    whole = everything.sample
    assert whole is not None and everything.distinct == {"c": ["a", "b", "c"]}
    pd.testing.assert_frame_equal(whole, rows)


def test_a_time_range_keeps_its_rows_only(data):
    profile, current, paths = data
    since, until = pd.Timestamp("2026-01-10", tz="UTC"), pd.Timestamp("2026-01-20", tz="UTC")
    got = stream_drift(paths, profile, time_column="day", since=since, until=until,
                       sample_rows=100_000)  # fmt: skip
    days = pd.to_datetime(current["day"]).dt.tz_localize("UTC")
    kept = current[(days >= since) & (days < until)]
    same(got.overall, check_drift(profile, kept))
    assert got.sample is not None and len(got.sample) == len(kept)
    with pytest.raises(DataValidationError, match="no rows"):
        stream_drift(paths, profile, time_column="day", since=pd.Timestamp("2030-01-01", tz="UTC"))


def test_a_bad_value_is_named_by_its_row_in_the_file(tmp_path):
    from lib.data.schema import coerce_column

    profile = build_profile(frame(2_000, 0.0, 0), KINDS)
    bad = frame(3_000, 0.0, 1).assign(x=lambda f: f["x"].fillna(0).astype(str))
    bad.loc[2_345, "x"] = "twelve"
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path)

    def parse(rows: pd.DataFrame, where) -> pd.DataFrame:
        return rows.assign(x=coerce_column(rows["x"], "numeric", "x", where))

    with pytest.raises(
        DataValidationError, match=r"bad.parquet: column 'x' row 2,346: 'twelve'"
    ) as err:
        stream_drift([path], profile, batch_rows=1_000, prepare=parse)
    assert err.value.row == 2_346


def test_files_outside_the_time_range_are_not_read(data, monkeypatch):
    import pyarrow.parquet as pq

    from lib.monitoring import stream

    profile, current, paths = data
    since = pd.Timestamp("2026-02-10", tz="UTC")  # past the first frame's 48 days: parts 0-1
    read: list[str] = []
    original = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        read.append(self.metadata.num_rows)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    got = stream_drift(paths, profile, time_column="day", since=since, sample_rows=100)
    days = pd.to_datetime(current["day"]).dt.tz_localize("UTC")
    same(got.overall, check_drift(profile, current[days >= since]))
    assert len(read) < len(paths)  # a part whose statistics end before `since` is skipped
    assert stream.count_rows(paths, "day", since) == [
        int(((pd.to_datetime(current.iloc[p]["day"]).dt.tz_localize("UTC")) >= since).sum())
        for p in np.array_split(np.arange(len(current)), 5)
    ]
