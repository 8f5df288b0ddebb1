"""The Wasserstein distance from counts equals the one from two sorted samples."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from lib.core.param_sections import MonitorParams
from lib.monitoring import window_wasserstein as ww
from lib.monitoring._binned import binned_area
from lib.monitoring.window_drift import window_drift
from lib.monitoring.windows import parse_spec, reference_windows, split


def _binned(values: np.ndarray, bins: int) -> ww.BinnedReference:
    """``values`` (sorted) in ``bins`` bins: few bins put many values in each, so many are
    walked in order where the CDFs cross."""
    return ww.BinnedReference.in_bins(values, bins)


def _samples(kind: str, rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "normal":
        return rng.normal(0, 1, n), rng.normal(0.1, 1.2, m)
    if kind == "same":  # no shift: the CDFs cross again and again
        return rng.normal(0, 1, n), rng.normal(0, 1, m)
    if kind == "few values":  # ties on both sides, and a value the reference never had
        return rng.integers(0, 5, n).astype(float), rng.integers(0, 6, m).astype(float)
    if kind == "heavy tails":
        return rng.standard_cauchy(n), rng.standard_cauchy(m)
    if kind == "rounded":
        return rng.normal(0, 1, n).round(1), rng.normal(0, 1, m).round(2)
    if kind == "offset":  # a large magnitude with a small spread
        return rng.gamma(2, 2, n) + 1e6, rng.gamma(2, 2.1, m) + 1e6
    if kind == "outside":  # a pile of values beyond each end of the reference
        ref = rng.uniform(0, 1, n)
        return ref, np.concatenate([rng.uniform(0, 1, m), np.full(m // 3, -2.0), np.full(7, 5.0)])
    assert kind == "resampled"  # the window's values are the reference's own
    ref = rng.uniform(0, 1, n)
    return ref, ref[rng.integers(0, n, m)]


KINDS = ["normal", "same", "few values", "heavy tails", "rounded", "offset", "outside", "resampled"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("n", "m", "bins"), [(3000, 2000, 64), (500, 20_000, 7), (1, 40, 3), (40, 1, 5)]
)
def test_the_binned_distance_equals_the_sorted_one(kind, n, m, bins):
    rng = np.random.default_rng(len(kind) * 1000 + n + m + bins)
    ref, cur = _samples(kind, rng, n, m)
    ref = np.sort(ref)
    want = ww.wasserstein(ref, np.sort(cur))
    if ref[-1] == ref[0]:
        assert ww.BinnedReference.of(ref, m) is None  # a constant reference: sorted instead
        return
    got = ww.binned_wasserstein(_binned(ref, bins), cur)
    assert got == pytest.approx(want, rel=1e-11, abs=1e-14)
    chosen = ww.BinnedReference.of(ref, m)
    if chosen is not None:  # with the bins it picks itself
        assert ww.binned_wasserstein(chosen, cur) == pytest.approx(want, rel=1e-11, abs=1e-14)


@pytest.mark.parametrize(
    "draw",
    [
        "crowded",  # most of the window in a few bins: sorted there (more than 16 a bin)
        "edges",  # values on the bins' edges and on the range's two ends
        "few",  # a window of two values
    ],
)
def test_the_walk_where_the_cdfs_cross_is_exact(draw):
    rng = np.random.default_rng(11)
    ref = np.sort(rng.uniform(0, 1, 5_000))
    binned = _binned(ref, 10)
    if draw == "crowded":
        cur = np.concatenate([rng.normal(0.5, 0.01, 30_000), rng.uniform(0, 1, 300)])
    elif draw == "edges":
        cur = np.concatenate([np.linspace(0, 1, 11), ref[::7], np.full(50, ref[-1]), [ref[0]]])
    else:
        cur = np.array([0.25, 0.75])
    got = ww.binned_wasserstein(binned, cur)
    assert got == pytest.approx(ww.wasserstein(ref, np.sort(cur)), rel=1e-12, abs=1e-15)


def test_a_window_is_read_whatever_its_layout_and_left_as_it_was():
    rng = np.random.default_rng(2)
    ref = np.sort(rng.normal(0, 1, 4_000))
    binned = _binned(ref, 64)
    values = rng.normal(0.2, 1, 6_000)
    want = ww.wasserstein(ref, np.sort(values))
    kept = values.copy()
    frozen = values.view()
    frozen.flags.writeable = False  # the drift check passes read-only views of a column
    assert ww.binned_wasserstein(binned, frozen) == pytest.approx(want, rel=1e-12)
    strided = np.repeat(values, 2)[::2]  # not contiguous
    assert ww.binned_wasserstein(binned, strided) == pytest.approx(want, rel=1e-12)
    as_float32 = values.astype(np.float32)
    expected = ww.wasserstein(ref, np.sort(as_float32.astype(float)))
    assert ww.binned_wasserstein(binned, as_float32) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(values, kept)


def test_a_window_with_nan_is_refused_not_placed():
    binned = _binned(np.linspace(0.0, 1.0, 100), 8)
    with pytest.raises(ValueError, match="holds NaN; pass its present values only"):
        ww.binned_wasserstein(binned, np.array([0.5, np.nan, 0.2]))
    # infinities have a place: past the range's ends, infinitely far
    assert ww.binned_wasserstein(binned, np.array([0.5, np.inf])) == np.inf
    short = np.array(binned.first)
    short[-1] -= 1  # bins that claim fewer reference values than there are
    with pytest.raises(ValueError, match="do not span the reference's places"):
        binned_area(np.array([0.5]), binned.lo, binned.scale, binned.places, short, binned.offsets)
    swapped = np.array(binned.first)
    swapped[[2, 3]] = swapped[[3, 2]]
    with pytest.raises(ValueError, match="starts are not in order"):
        binned_area(
            np.array([0.5]), binned.lo, binned.scale, binned.places, swapped, binned.offsets
        )


def test_the_distance_is_worked_out_without_holding_the_gil():
    # the monitor's column jobs run on two threads: a job that held the GIL here stalled the
    # other's Python (docs/benchmarks.md). This thread's loop must run all through a long call.
    rng = np.random.default_rng(4)
    binned = ww.BinnedReference.of(np.sort(rng.normal(0, 1, 200_000)), 1_000_000)
    assert binned is not None
    window = rng.normal(0.1, 1, 5_000_000)
    span: list[float] = []
    done = threading.Event()

    def score() -> None:
        span.append(time.perf_counter())
        binned_area(window, binned.lo, binned.scale, binned.places, binned.first, binned.offsets)
        span.append(time.perf_counter())
        done.set()

    ticks: list[float] = []
    worker = threading.Thread(target=score)
    worker.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
    worker.join()
    start, end = span
    during = [t for t in ticks if start < t < end]
    # with the GIL held, this loop could run only until the next switch (5 ms) after ``start``
    assert during and (max(during) - min(during)) > 0.5 * (end - start)


def test_a_reference_too_narrow_for_its_magnitude_is_left_to_the_sort():
    assert ww.BinnedReference.of(np.array([1e12, 1e12 + 1e-4]), 50_000) is None
    assert ww.BinnedReference.of(np.array([3.0, 3.0, 3.0]), 50_000) is None
    subnormal = np.linspace(0.0, 1e-310, 2_000)  # bins / range overflows: no scale to place by
    assert ww.BinnedReference.of(subnormal, 50_000) is None
    as_float32 = ww.BinnedReference.in_bins(np.linspace(0, 1, 100, dtype=np.float32), 8)
    assert as_float32.places.dtype == np.float64
    assert ww.binned_wasserstein(as_float32, np.array([0.5])) > 0
    ties = np.sort(np.random.default_rng(0).integers(0, 96, 10_000).astype(float))
    assert ww.BinnedReference.of(ties, 50_000) is None  # mostly tied (ages): sorted instead
    binned = ww.BinnedReference.of(np.array([0.0, 1.0, 2.0]), 50_000)
    assert binned is not None and binned.bins >= 64
    assert np.isnan(ww.binned_wasserstein(binned, np.array([])))


@pytest.mark.parametrize("draw", ["pareto", "lognormal"])
def test_a_heavy_tailed_reference_is_left_to_the_sort(draw):
    # incomes, prices: equal bins of the whole range leave most values in a few bins
    rng = np.random.default_rng(5)
    values = rng.pareto(2, 200_000) if draw == "pareto" else rng.lognormal(0, 2, 200_000)
    assert ww.BinnedReference.of(np.sort(values), 50_000) is None
    moderate = np.sort(rng.lognormal(0, 1, 200_000))  # its densest bin: 0.3 % of the values
    assert ww.BinnedReference.of(moderate, 50_000) is not None


def test_window_drift_gives_the_same_table_from_counts_as_from_sorts(monkeypatch):
    rng = np.random.default_rng(3)
    n = 60_000

    def frame(shift: float) -> pd.DataFrame:
        x = rng.gamma(2.0, 2.0, n) + shift
        x[rng.random(n) < 0.05] = np.nan
        return pd.DataFrame({"x": x, "y": rng.normal(0, 1, n).round(2)})

    ref, cur = frame(0.0), frame(0.3)
    kinds = {"x": "numeric", "y": "numeric"}
    spec = parse_spec("20000 rows")
    cur_windows = split(n, spec)
    ref_windows = reference_windows(n, spec, cur_windows)
    params = MonitorParams(threads=1)
    binned = window_drift(ref, cur, kinds, ref_windows, cur_windows, params)
    calls: list[int] = []
    original = ww.binned_wasserstein

    def counted(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr("lib.monitoring.window_drift.binned_wasserstein", counted)
    assert window_drift(ref, cur, kinds, ref_windows, cur_windows, params).shape == binned.shape
    assert calls  # windows of 20,000 rows are scored from counts
    monkeypatch.setattr("lib.monitoring.window_drift.BINNED_ROWS", 10**9)
    sorted_ = window_drift(ref, cur, kinds, ref_windows, cur_windows, params)
    pd.testing.assert_frame_equal(binned, sorted_, rtol=1e-11)
    assert binned.loc[binned["period"] == "current", "alert"].any()  # the shift is seen
