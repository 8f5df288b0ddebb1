"""A window's misclassifications against the reference's, compared at equal confidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lib.monitoring import labelled_rows
from lib.monitoring.labelled_rows import Rows, errors_rose


def sides(ref_errors, cur_errors, ref_conf=None, cur_conf=None):
    """Reference rows and one current window ``w`` of the given errors (and confidences)."""
    ref_errors, cur_errors = np.asarray(ref_errors, float), np.asarray(cur_errors, float)
    frame = pd.DataFrame(index=range(len(cur_errors)))
    ref = Rows(pd.DataFrame(index=range(len(ref_errors))), ref_errors, confidence=ref_conf)
    keys = np.array(["w"] * len(cur_errors), dtype=object)
    return ref, Rows(frame, cur_errors, keys, confidence=cur_conf)


def test_one_band_is_fishers_exact_test():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n_ref, n_cur = int(rng.integers(5, 300)), int(rng.integers(5, 300))
        k_ref, k_cur = int(rng.integers(0, n_ref + 1)), int(rng.integers(0, n_cur + 1))
        ref, cur = sides([1] * k_ref + [0] * (n_ref - k_ref), [1] * k_cur + [0] * (n_cur - k_cur))
        rise = errors_rose(ref, cur, "w")
        table = [[k_cur, n_cur - k_cur], [k_ref, n_ref - k_ref]]
        assert rise.p_value == pytest.approx(
            stats.fisher_exact(table, alternative="greater").pvalue, rel=1e-9, abs=1e-12
        )
    # the near-perfect model's reference of few errors cannot vouch for a window of a few more
    ref, cur = sides([1] * 2 + [0] * 86, [1] * 5 + [0] * 80)
    rise = errors_rose(ref, cur, "w")
    assert not rise.rose and rise.p_value > 0.2
    assert rise.text == (
        "5 errors in 85 labelled rows against the reference's 2 in 88, at equal confidence"
    )


def test_bands_are_exact_against_permutations_within_them():
    rng = np.random.default_rng(1)
    ref_conf, cur_conf = rng.uniform(0.5, 1, 120), rng.uniform(0.5, 1, 90)
    ref_err = (rng.random(120) < 1.1 - ref_conf).astype(float)
    cur_err = (rng.random(90) < 1.2 - cur_conf).astype(float)
    ref, cur = sides(ref_err, cur_err, ref_conf, cur_conf)
    p = errors_rose(ref, cur, "w").p_value
    # permute the errors among each band's rows of both sides, as the test's null has it
    conf = np.concatenate([ref_conf, cur_conf])
    errors = np.concatenate([ref_err, cur_err])
    edges = np.unique(np.quantile(conf, np.linspace(0, 1, 6)[1:-1]))
    band = np.searchsorted(edges, conf, side="right")
    observed, hits = cur_err.sum(), 0
    for _ in range(20_000):
        shuffled = errors.copy()
        for b in np.unique(band):
            at = np.flatnonzero(band == b)
            shuffled[at] = rng.permutation(shuffled[at])
        hits += shuffled[120:].sum() >= observed
    assert p == pytest.approx(hits / 20_000, abs=0.01)


def test_more_errors_from_less_confident_rows_are_not_a_rise_but_confident_errors_are():
    rng = np.random.default_rng(2)
    ref_conf = rng.uniform(0.5, 1, 2_000)
    cur_conf = rng.uniform(0.5, 0.75, 400)  # the window holds only uncertain rows
    ref_err = (rng.random(2_000) < 1 - ref_conf).astype(float)  # calibrated: P(error) = 1 - c
    cur_err = (rng.random(400) < 1 - cur_conf).astype(float)
    ref, cur = sides(ref_err, cur_err, ref_conf, cur_conf)
    assert not errors_rose(ref, cur, "w").rose
    # without the confidence the error rates alone say it rose
    assert errors_rose(*sides(ref_err, cur_err), "w").rose
    # errors among confident rows (P(y|x) changed there) are a rise
    confident = rng.uniform(0.9, 1, 400)
    flipped = np.where(rng.random(400) < 0.1, 1.0, (rng.random(400) < 1 - confident))
    assert errors_rose(*sides(ref_err, flipped, ref_conf, confident), "w").rose


def test_the_normal_tail_of_large_windows_agrees_with_the_exact_one(monkeypatch):
    for seed, rise in ((4, 1.0), (3, 1.0), (3, 1.01)):  # p about 0.23, 6e-4 and 5e-6
        rng = np.random.default_rng(seed)
        ref_conf, cur_conf = rng.uniform(0.5, 1, 20_000), rng.uniform(0.5, 1, 5_000)
        ref_err = (rng.random(20_000) < 1 - ref_conf).astype(float)
        cur_err = (rng.random(5_000) < rise - cur_conf).astype(float)
        ref, cur = sides(ref_err, cur_err, ref_conf, cur_conf)
        exact = errors_rose(ref, cur, "w").p_value
        monkeypatch.setattr(labelled_rows, "_EXACT_ERRORS", 10)
        assert errors_rose(ref, cur, "w").p_value == pytest.approx(exact, rel=0.15)
        monkeypatch.undo()


def test_regression_errors_and_windows_without_labels_are_not_tested():
    assert errors_rose(*sides([0.5, 1.5, 0.2], [2.0, 3.0]), "w") is None
    ref, cur = sides([0, 1, 0], [np.nan, np.nan])
    assert errors_rose(ref, cur, "w") is None
    assert errors_rose(ref, cur, "elsewhere") is None
