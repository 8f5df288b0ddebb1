"""Multivariate drift's column preparation: in place, the same numbers as from a copy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins

from lib.core.errors import DataValidationError
from lib.data.drift_profile import numeric_values
from lib.monitoring.multivariate_prepare import (
    encoded,
    learn_column,
    learn_numeric,
    take_into,
)


def _learned(values: pd.Series, kind: str):
    fill, shares, mean, scale = {}, {}, np.zeros(1), np.ones(1)
    column = learn_column(values, "x", kind, fill, shares, mean, scale, 0)
    return column, fill, shares, mean, scale


@pytest.mark.parametrize("name", ["bill_length_mm", "body_mass_g", "year"])
def test_rows_taken_into_a_matrix_are_prepared_as_a_copy_of_them(name):
    """The reference half taken straight into the matrix's column: the same bits, the same
    fill, mean and scale as learning from a frame of those rows (floats with missing values,
    and integers)."""
    values = load_penguins()[name]
    rows = np.flatnonzero(np.random.default_rng(0).random(len(values)) < 0.5)
    want, want_fill, _, want_mean, want_scale = _learned(values.iloc[rows], "numeric")
    matrix = np.full((len(rows), 3), 7.0, order="F")
    fill, mean, scale = {}, np.zeros(1), np.ones(1)
    learn_numeric(take_into(numeric_values(values), rows, matrix[:, 1]), "x", fill, mean, scale, 0)
    assert np.array_equal(matrix[:, 1], want)
    assert (fill, mean[0], scale[0]) == (want_fill, want_mean[0], want_scale[0])
    assert (matrix[:, [0, 2]] == 7.0).all()  # only its own column written


def test_infinite_values_are_filled_like_missing_ones():
    values = pd.Series([1.0, np.nan, np.inf, 3.0, -np.inf])
    column, fill, *_ = _learned(values, "numeric")
    assert fill == {"x": 2.0}  # the mean of the finite values
    assert np.isfinite(column).all()
    assert len(set(column[[1, 2, 4]])) == 1  # all three took the fill


def test_category_codes_minus_one_take_the_last_entry_in_place():
    lookup = np.array([0.5, 0.3, 0.2, 0.9])  # the last: a missing value's share
    out = np.empty(5)
    got = take_into(lookup, np.array([2, -1, 0, 1, -1]), out)
    assert got is out
    assert out.tolist() == [0.2, 0.9, 0.5, 0.3, 0.9]


def test_a_pandas_category_is_encoded_as_its_values():
    values = pd.Series(["a", "b", None, "a", "c"])
    shares = {"a": 0.5, "b": 0.25, "c": 0.25}
    plain = encoded(values, "categorical", "a", shares)
    as_category = encoded(values.astype("category"), "categorical", "a", shares)
    assert plain.tolist() == as_category.tolist() == [0.5, 0.25, 0.5, 0.5, 0.25]


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_a_column_without_values_is_named(kind):
    values = pd.Series([np.nan, np.nan, np.nan], dtype=float if kind == "numeric" else object)
    with pytest.raises(DataValidationError, match=r"column 'x' has no present values.*exclude"):
        _learned(values, kind)
