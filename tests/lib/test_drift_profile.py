"""The reference profile's helpers: finite values without a copy, the few-values count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.data.drift_profile import FEW_VALUES, finite_values, profile_column, sorted_floats


def test_finite_values_are_the_values_themselves_when_all_are_finite():
    values = np.random.default_rng(0).normal(size=1000)
    kept = finite_values(values)
    assert np.shares_memory(kept, values)  # no copy
    assert not kept.flags.writeable  # and nothing may write through it
    assert values.flags.writeable  # the caller's own array is untouched
    np.testing.assert_array_equal(kept, values)


def test_finite_values_drop_missing_and_infinite_ones_into_a_copy():
    values = np.array([1.0, np.nan, 2.0, np.inf, -np.inf, 3.0])
    kept = finite_values(pd.Series(values))
    np.testing.assert_array_equal(kept, [1.0, 2.0, 3.0])
    assert not np.shares_memory(kept, values)


@pytest.mark.parametrize("distinct", [FEW_VALUES - 1, FEW_VALUES, FEW_VALUES + 1])
def test_a_column_of_few_values_is_counted_up_to_the_limit(distinct):
    values = pd.Series(np.repeat(np.arange(distinct, dtype=float), 3)[::-1])
    col = profile_column("x", values, "numeric")
    if distinct <= FEW_VALUES:
        assert col.counts == {repr(float(v)): 3 for v in range(distinct)}
    else:
        assert col.counts is None
    assert col.count == 3 * distinct


def test_sorting_by_bucket_gives_numpys_sort():
    rng = np.random.default_rng(1)
    for values in (rng.normal(size=50_000), rng.gamma(2.0, 2.0, 20_000), rng.integers(0, 9, 5000)):
        values = values.astype(float)
        np.testing.assert_array_equal(sorted_floats(values), np.sort(values))
