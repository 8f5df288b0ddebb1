"""Mergeable drift summaries give the in-memory check's statistics (lib/data/drift_summary.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.data import drift_summary
from lib.data.drift import column_drift
from lib.data.drift_profile import profile_column

RNG = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def _same_draws_in_any_order():
    """Each test draws from a fresh generator: its data do not depend on the tests run before."""
    global RNG
    RNG = np.random.default_rng(7)


def summarised(col, values: pd.Series, parts: int = 7, method: str | None = None):
    """The summary of ``values`` built from ``parts`` batches, merged in two halves."""
    chunks = np.array_split(np.arange(len(values)), parts)
    halves = [drift_summary.empty_summary(col, method), drift_summary.empty_summary(col, method)]
    for i, rows in enumerate(chunks):
        halves[i % 2] = halves[i % 2].add(values.iloc[rows])
    return halves[0].merge(halves[1])


def in_memory(col, values: pd.Series, method: str) -> float:
    return column_drift(col, values, method).score


@pytest.mark.parametrize("reference_rows", [3_000, 200_000])  # kept exactly / as quantiles
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5])
def test_ks_on_a_big_current_side_is_exact(reference_rows, shift):
    col = profile_column("x", pd.Series(RNG.normal(size=reference_rows)), "numeric")
    current = pd.Series(RNG.normal(shift, 1.1, size=60_000))
    summary = summarised(col, current)
    assert summary.values is None  # past EXACT_ROWS: only counts are held
    assert drift_summary.score("ks", col, summary) == pytest.approx(
        in_memory(col, current, "ks"), rel=1e-9, abs=1e-300
    )


@pytest.mark.parametrize("reference_rows", [3_000, 200_000])
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5])
def test_wasserstein_on_a_big_current_side_is_within_its_bound(reference_rows, shift):
    col = profile_column("x", pd.Series(RNG.normal(size=reference_rows)), "numeric")
    current = pd.Series(RNG.normal(shift, 1.1, size=60_000))
    got = drift_summary.score("wasserstein", col, summarised(col, current))
    want = in_memory(col, current, "wasserstein")
    assert got == pytest.approx(want, rel=2e-3)
    assert (got >= 0.1) == (want >= 0.1) or abs(want - 0.1) < 1e-3  # the same verdict


def test_categories_and_few_values_are_exact_on_any_size():
    levels = pd.Series(RNG.choice(["a", "b", "c", "d"], size=5_000, p=[0.4, 0.3, 0.2, 0.1]))
    cat = profile_column("c", levels, "categorical")
    current = pd.Series(RNG.choice(["a", "b", "c", "d"], size=80_000, p=[0.3, 0.3, 0.3, 0.1]))
    few = profile_column("n", pd.Series(RNG.integers(0, 4, size=5_000)), "numeric")
    numbers = pd.Series(RNG.integers(0, 4, size=80_000).astype(float))
    for col, values in ((cat, current), (few, numbers)):
        for method in ("chisquare", "z", "jensenshannon", "psi"):
            summary = summarised(col, values, method=method)
            want = in_memory(col, values, method)
            assert drift_summary.score(method, col, summary) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("method", ["ks", "wasserstein", "jensenshannon", "psi"])
def test_a_small_current_side_is_the_in_memory_computation(method):
    col = profile_column("x", pd.Series(RNG.normal(size=20_000)), "numeric")
    current = pd.Series(RNG.normal(0.2, 1, size=4_000))
    current[::50] = np.nan  # missing values are left out, as in memory
    summary = summarised(col, current, method=method)
    assert summary.values is not None and summary.count == 4_000 - 80 and summary.rows == 4_000
    assert drift_summary.score(method, col, summary) == in_memory(col, current, method)


def test_jensenshannon_on_a_big_numeric_side_is_close():
    col = profile_column("x", pd.Series(RNG.normal(size=20_000)), "numeric")
    current = pd.Series(RNG.normal(0.3, 1, size=60_000))
    got = drift_summary.score("jensenshannon", col, summarised(col, current))
    assert got == pytest.approx(in_memory(col, current, "jensenshannon"), rel=0.05)


def test_merging_is_adding_whatever_the_split():
    col = profile_column("x", pd.Series(RNG.normal(size=2_000)), "numeric")
    values = pd.Series(np.round(RNG.normal(size=30_000), 2))  # ties with the grid, too
    one = drift_summary.empty_summary(col).add(values)
    many = summarised(col, values, parts=13)
    assert np.array_equal(one.between, many.between) and np.array_equal(one.equal, many.equal)
    assert np.allclose(one.sums, many.sums) and (one.low, one.high) == (many.low, many.high)
    assert one.between.sum() + one.equal.sum() == one.count == 30_000
