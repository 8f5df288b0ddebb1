"""Windows: parsing a spec, cutting by period, rows and count, and the reference band."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.core.errors import ParamsError
from lib.monitoring import windows as w


@pytest.mark.parametrize(
    ("spec", "kind", "size"),
    [
        (None, "count", 5),
        (500, "rows", 500),
        ("1000 rows", "rows", 1000),
        ("4 windows", "count", 4),
    ],
)
def test_row_and_count_specs(spec, kind, size):
    parsed = w.parse_spec(spec)
    assert (parsed.kind, parsed.size) == (kind, size)


@pytest.mark.parametrize("spec", ["1D", "1W", "2W", "1M", "1ME", "1Q", "1Y"])
def test_period_specs(spec):
    assert w.parse_spec(spec).kind == "period"


@pytest.mark.parametrize("spec", ["fortnight", "1 rows", 0, True, "0 windows"])
def test_a_bad_spec_names_the_key_and_the_forms(spec):
    with pytest.raises(ParamsError, match=r"monitor.window: .*'N rows'"):
        w.parse_spec(spec)


def test_monthly_windows_follow_the_calendar():
    times = pd.Series(pd.date_range("2024-01-15", periods=60, freq="D"))
    got = w.split(60, w.parse_spec("1M"), times)
    assert [x.key for x in got] == ["2024-01", "2024-02", "2024-03"]
    assert [x.rows for x in got] == [17, 29, 14]
    assert got[1].start == pd.Timestamp("2024-02-01") and got[1].end == pd.Timestamp("2024-03-01")
    assert np.array_equal(np.concatenate([x.index for x in got]), np.arange(60))


def test_rows_without_a_time_fall_in_no_window():
    times = pd.Series([pd.Timestamp("2024-01-01"), pd.NaT, "2024-01-02"])
    got = w.split(3, w.parse_spec("1D"), times)
    assert [x.index.tolist() for x in got] == [[0], [2]]


def test_a_period_without_a_time_column_says_how_to_fix_it():
    with pytest.raises(ParamsError, match="time_column"):
        w.split(10, w.parse_spec("1W"), None)


def test_count_windows_cover_every_row_once():
    got = w.split(10, w.parse_spec("3 windows"))
    assert [x.index.tolist() for x in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_reference_windows_take_the_current_windows_size():
    current = w.split(1000, w.parse_spec("4 windows"))
    ref = w.reference_windows(5000, w.parse_spec("4 windows"), current)
    assert {x.rows for x in ref} == {250} and len(ref) == 20


def test_the_band_is_mean_plus_minus_sigmas_clipped():
    band = w.reference_band([0.1, 0.2, 0.3], sigmas=3, lower_limit=0.0)
    sd = np.std([0.1, 0.2, 0.3])
    assert band.lower == 0.0 and band.upper == pytest.approx(0.2 + 3 * sd)
    assert band.alerts(0.2 + 3.1 * sd) and not band.alerts(0.25) and not band.alerts(float("nan"))
    upper_only = w.reference_band([0.1, 0.2, 0.3], side="upper")
    assert upper_only.lower is None and not upper_only.alerts(-5.0)


def test_rows_taken_is_a_slice_only_for_consecutive_rows():
    values = np.arange(10.0) * 3
    rows = w.split(10, w.parse_spec("4 rows"))
    assert [r.rows_taken for r in rows] == [slice(0, 4), slice(4, 8), slice(8, 10)]
    # a period window with a gap (rows of another month between) keeps its positions
    times = pd.Series(pd.to_datetime(["2024-01-05", "2024-02-01", "2024-01-20", "2024-01-30"]))
    january = w.split(4, w.parse_spec("1M"), times)[0]
    assert isinstance(january.rows_taken, np.ndarray)
    assert values[january.rows_taken].tolist() == [0.0, 6.0, 9.0]
    assert w.Window("none", np.array([], dtype=int)).rows_taken.tolist() == []
