"""The isotonic regression CBPE's calibration fits, against SciPy's pool-adjacent-violators."""

import numpy as np
import pytest
from scipy.optimize import isotonic_regression as scipys

from lib.monitoring.isotonic import isotonic_regression


def _runs(score: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each distinct score's count and sum of truths, in score order (as calibration's runs)."""
    order = np.lexsort((truth, score))
    x, y = score[order], truth[order]
    starts = np.flatnonzero(np.r_[True, np.diff(x) > 0])
    return np.add.reduceat(y, starts), np.diff(np.r_[starts, len(x)]).astype(float)


def _theirs(sums: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.asarray(scipys(sums / weights, weights=weights).x)


@pytest.mark.parametrize(
    ("rows", "shape", "rounding"),
    [
        (50_000, "square", None),  # miscalibrated scores: a few hundred blocks
        (50_000, "sigmoid", None),
        (20_000, "linear", 2),  # ties: runs of many rows
        (3, "linear", None),
        (1, "linear", None),
    ],
)
def test_the_fit_is_scipys_on_a_classifiers_runs(rows, shape, rounding):
    rng = np.random.default_rng(rows)
    score = rng.random(rows)
    score = score if rounding is None else np.round(score, rounding)
    chance = {"square": score**2, "sigmoid": 1 / (1 + np.exp(-20 * (score - 0.5)))}
    truth = (rng.random(rows) < chance.get(shape, score)).astype(float)
    sums, weights = _runs(score, truth)
    ours, theirs = isotonic_regression(sums, weights), _theirs(sums, weights)
    # integer sums: each block's mean rounded once here, as SciPy merges there (3 units apart
    # at most were seen, 3.3e-16)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-15)
    assert np.all(np.diff(ours) >= 0)


@pytest.mark.parametrize(
    "values",
    [
        np.linspace(1.0, 0.0, 5000),  # decreasing: one block, the mean
        np.arange(100.0),  # increasing already: unchanged
        np.full(50, 0.25),  # constant
        np.r_[np.zeros(10), 1.0, np.zeros(10), 1.0, 1.0, np.zeros(3)],  # staircases of 0/1
        np.sin(np.linspace(0, 40, 4000)) + np.linspace(0, 3, 4000),  # many blocks of all sizes
    ],
)
def test_the_fit_is_scipys_on_shapes_that_stress_the_hull(values):
    ours = isotonic_regression(values, np.ones(len(values)))
    np.testing.assert_allclose(ours, _theirs(values, np.ones(len(values))), rtol=0, atol=1e-12)


def test_weighted_points_with_uneven_weights_are_scipys():
    rng = np.random.default_rng(3)
    means, weights = rng.normal(size=3000), rng.random(3000) * 10 + 0.01
    ours = isotonic_regression(means * weights, weights)
    np.testing.assert_allclose(ours, _theirs(means * weights, weights), rtol=0, atol=1e-10)


def test_each_block_is_the_mean_of_its_points():
    values = np.array([1.0, 3.0, 2.0, 0.0, 5.0, 4.0, 6.0])
    # [1]; [3, 2, 0] pooled: 5 / 3, above 1; [5, 4] pooled: 4.5; [6]
    assert isotonic_regression(values, np.ones(7)).tolist() == [1.0] + [5 / 3] * 3 + [4.5, 4.5, 6.0]


def test_no_points_give_no_fit():
    assert isotonic_regression(np.array([]), np.array([])).shape == (0,)
