"""Parquet to pandas at about one copy: the same frame as pandas.read_parquet, whatever it holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.core import frames
from lib.core.errors import DataValidationError
from lib.core.paths import PROJECT_ROOT


def sample() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 500
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "code": pd.Categorical(rng.choice(["7", "12", "30"], n)),  # numeric-looking codes
            "count": pd.array(rng.integers(0, 9, n), dtype="Int64"),
            "when": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "text": rng.choice(["a", None, "ü"], n),
            "flag": rng.random(n) < 0.5,
        }
    )


@pytest.mark.parametrize("index", [None, "ids"])
def test_the_frame_equals_pandas_own_read(tmp_path, index):
    frame = sample()
    if index:  # an index stored as a column: read whole, the index comes along
        frame.index = pd.Index([f"r{i}" for i in range(len(frame))], name=index)
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    got, want = frames.read_parquet(path), pd.read_parquet(path)
    pd.testing.assert_frame_equal(got, want)
    pd.testing.assert_frame_equal(
        frames.read_parquet(path, ["when", "x"]), pd.read_parquet(path, columns=["when", "x"])
    )


PEAK = """
import sys
import pandas as pd
from lib.core import frames
from lib.core.paths import PROJECT_ROOT
def peak():
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024
before = peak()
frame = {read}(sys.argv[1])
print((peak() - before) / frame.memory_usage(index=False).sum())
"""


def _peak_ratio(path, read: str) -> float:
    """How much the peak resident memory grew, in frames, reading ``path`` in a fresh process."""
    code = PEAK.format(read=read)
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         cwd=PROJECT_ROOT, check=True)  # fmt: skip
    return float(out.stdout)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_reading_costs_about_one_copy_of_the_frame(tmp_path):
    path = tmp_path / "big.parquet"
    n = 2_000_000  # 8 float columns: 128 MB, well above the imports' noise
    pd.DataFrame({f"c{i}": np.arange(n, dtype=float) + i for i in range(8)}).to_parquet(path)
    ours, pandas_own = (
        _peak_ratio(path, "frames.read_parquet"),
        _peak_ratio(path, "pd.read_parquet"),
    )
    print(f"peak growth in frames: ours {ours:.2f}, pandas {pandas_own:.2f}")
    assert ours < 1.6 < pandas_own  # pandas holds the table and the frame at once


def test_positional_is_a_selection_with_a_reset_index_sharing_the_data():
    frame = pd.DataFrame(
        {
            "x": [1.5, 2.5, np.nan],
            "c": pd.Categorical(["a", "b", "a"]),
            "s": ["u", None, "w"],
            "n": pd.array([1, None, 3], dtype="Int64"),
        },
        index=[10, 30, 20],
    )
    got = frames.positional(frame, ["s", "x", "c", "n"])
    pd.testing.assert_frame_equal(got, frame[["s", "x", "c", "n"]].reset_index(drop=True))
    assert isinstance(got.index, pd.RangeIndex)
    assert np.shares_memory(got["x"].to_numpy(), frame["x"].to_numpy())
    assert np.shares_memory(got["c"].cat.codes.to_numpy(), frame["c"].cat.codes.to_numpy())
    pd.testing.assert_frame_equal(frames.positional(frame), frame.reset_index(drop=True))
    assert frames.positional(frame.iloc[:0]).shape == (0, 4)


def test_parquet_columns_read_each_column_as_the_whole_frame_holds_it(tmp_path):
    frame = sample()
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path, index=False, row_group_size=120)
    source, whole = frames.ParquetColumns(path), frames.read_parquet(path)
    assert len(source) == len(frame) and list(source.columns) == list(frame.columns)
    for name in frame.columns:  # dtypes too: categories of codes, Int64, zoned times, text
        pd.testing.assert_series_equal(source[name], whole[name], check_exact=True)
    pd.testing.assert_frame_equal(source[["when", "code"]], whole[["when", "code"]])
    with pytest.raises(KeyError, match="absent"):
        source["absent"]


def test_plain_number_columns_are_converted_on_their_own_as_pandas_reads_them(
    tmp_path, monkeypatch
):
    rng = np.random.default_rng(5)
    n = 300
    floats = rng.normal(size=n)
    floats[::7] = np.nan
    frame = pd.DataFrame(
        {
            "f": floats,
            "i": rng.integers(-5, 5, n),
            "nullable_f": pd.array(floats, dtype="Float64"),
            "nullable_i": pd.array(np.where(rng.random(n) < 0.1, None, 3), dtype="Int64"),
            "arrow_f": pd.Series(floats, dtype="double[pyarrow]"),
            "f32": floats.astype(np.float32),
        }
    )
    path = tmp_path / "numbers.parquet"
    frame.to_parquet(path, index=False)
    bare = tmp_path / "bare.parquet"  # written by Arrow alone: no pandas metadata
    pq.write_table(pa.table({"i": pa.array([1, None, 3]), "f": [0.5, None, 2.0]}), bare)
    assert frames.plain_columns(pq.read_schema(path)) == {"f", "i"}
    assert frames.plain_columns(pq.read_schema(bare)) == {"f", "i"}
    for file in (path, bare):
        expected = pd.read_parquet(file)
        pd.testing.assert_frame_equal(frames.read_parquet(file), expected, check_exact=True)
        source = frames.ParquetColumns(file)
        for name in expected.columns:
            pd.testing.assert_series_equal(source[name], expected[name], check_exact=True)
    # the plain columns do not go through pandas' conversion, the others do
    monkeypatch.setattr(frames, "to_frame", lambda *a, **k: pytest.fail("converted by pandas"))
    source = frames.ParquetColumns(path)
    assert source["f"].isna().sum() == np.isnan(floats).sum() and source["i"].dtype == np.int64
    with pytest.raises(pytest.fail.Exception):
        source["nullable_f"]


def test_parquet_columns_index_rows_by_position_when_the_file_stores_an_index(tmp_path):
    frame = sample().set_index(pd.Index(np.arange(500)[::-1] * 10, name="id"))
    path = tmp_path / "indexed.parquet"
    frame.to_parquet(path)  # the index is stored as a column
    source = frames.ParquetColumns(path)
    assert "id" not in source.columns and len(source) == 500
    assert source["x"].index.equals(pd.RangeIndex(500))
    np.testing.assert_array_equal(source["x"].to_numpy(), frame["x"].to_numpy())


def test_parquet_columns_stream_the_rows_asked_for_in_blocks(tmp_path):
    frame = sample()
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path, index=False, row_group_size=120)
    source = frames.ParquetColumns(path)
    blocks = list(source.blocks(["x", "code"], size=50))
    assert max(len(b) for b in blocks) == 50
    got = pd.concat(blocks, ignore_index=True)
    pd.testing.assert_frame_equal(got, frame[["x", "code"]], check_categorical=False)
    rows = np.sort(np.random.default_rng(0).choice(500, 77, replace=False))
    picked = pd.concat(list(source.blocks(["x", "count"], size=64, rows=rows)), ignore_index=True)
    expected = frame[["x", "count"]].iloc[rows].reset_index(drop=True)
    pd.testing.assert_frame_equal(picked, expected)
    with pytest.raises(ValueError, match="sorted"):
        next(source.blocks(["x"], size=64, rows=rows[::-1]))


def test_parquet_columns_refuse_a_file_rewritten_after_they_opened_it(tmp_path):
    path = tmp_path / "rows.parquet"
    sample().to_parquet(path, index=False)
    source = frames.ParquetColumns(path)
    first = source["x"]
    replacement = tmp_path / "new.parquet"
    sample().iloc[:400].to_parquet(replacement, index=False)
    replacement.replace(path)  # as an atomic rewrite does
    with pytest.raises(DataValidationError, match=r"rows\.parquet: the file changed while"):
        source["x"]
    with pytest.raises(DataValidationError, match="changed"):
        next(source.blocks(["x"], size=10))
    assert len(first) == 500
