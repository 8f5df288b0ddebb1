"""Multivariate drift: NannyML's PCA data reconstruction error per window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from sklearn.datasets import load_diabetes
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from lib.core.errors import DataValidationError
from lib.monitoring import windows as w
from lib.monitoring.multivariate import (
    COLUMNS,
    FOLDS,
    fit_and_score,
    fit_reconstruction,
    halves,
    multivariate_drift,
    out_of_fold,
)
from tests.lib.window_tables import randhie_splits

N = 20_000
SHIFTED = [i in (2, 3) for i in range(20)]  # windows 3 and 4 of 20


def butterfly(seed=0):
    """Two correlated features and an independent one; in windows 3 and 4 of the current the
    correlation flips sign while each feature's own distribution stays the same."""
    rng = np.random.default_rng(seed)

    def frame(n):
        a = rng.normal(0, 1, n)
        return pd.DataFrame(
            {
                "f1": a + rng.normal(0, 0.3, n),
                "f2": a + rng.normal(0, 0.3, n),
                "f3": rng.normal(0, 1, n),
            }
        )

    ref, cur = frame(N), frame(N)
    rows = cur.index[2 * 1000 : 4 * 1000]
    cur.loc[rows, "f2"] = -cur.loc[rows, "f2"]  # symmetric around 0: same marginal
    return ref, cur


KINDS = {"f1": "numeric", "f2": "numeric", "f3": "numeric"}


def cut(ref, cur, spec="20 windows"):
    parsed = w.parse_spec(spec)
    cur_w = w.split(len(cur), parsed)
    return w.reference_windows(len(ref), parsed, cur_w), cur_w


def test_a_flipped_correlation_alerts_only_in_its_windows():
    ref, cur = butterfly()
    out = multivariate_drift(ref, cur, KINDS, *cut(ref, cur))
    current = out[out["period"] == "current"]
    assert current["alert"].tolist() == SHIFTED
    assert list(out.columns) == COLUMNS
    assert (out["method"] == "pca_reconstruction").all()
    flipped, steady = current["value"][current["alert"]], current["value"][~current["alert"]]
    assert flipped.min() > 2 * steady.max()


def test_the_band_is_the_reference_windows_mean_and_sigmas_sd():
    ref, cur = butterfly()
    out = multivariate_drift(ref, cur, KINDS, *cut(ref, cur), sigmas=2.0)
    values = out.loc[out["period"] == "reference", "value"].to_numpy()
    # widened for the centre's own error: windows of 1,000 rows, 10,000 held-out reference rows
    k = 2 * np.sqrt(1 + 1000 / 10_000)
    assert out["upper"].iloc[0] == pytest.approx(values.mean() + k * values.std())
    assert out["lower"].iloc[0] == pytest.approx(max(values.mean() - k * values.std(), 0.0))


def test_the_error_is_scikit_learns_scaler_and_pca_on_numeric_columns():
    """Both fitted on the half of the reference :func:`halves` picks."""
    ref, cur = butterfly()
    fit, held = halves(len(ref))
    assert len(fit) == len(held) == len(ref) // 2 and not set(fit) & set(held)
    scaler = StandardScaler().fit(ref.iloc[fit])
    pca = PCA(n_components=0.65, svd_solver="full").fit(scaler.transform(ref.iloc[fit]))
    x = scaler.transform(cur.iloc[:1000])
    expected = np.linalg.norm(x - pca.inverse_transform(pca.transform(x)), axis=1).mean()
    out = multivariate_drift(ref, cur, KINDS, *cut(ref, cur))
    assert out.loc[out["period"] == "current", "value"].iloc[0] == pytest.approx(expected)
    # f1 and f2 move together: their component holds about 64 % of the variance, f3 the next
    assert pca.n_components_ == 2


def test_categories_are_frequency_encoded_and_missing_values_imputed():
    ref = pd.DataFrame({"x": [1.0, 2.0, np.nan, 3.0], "c": ["a", "a", "b", None]})
    model = fit_reconstruction(ref, {"x": "numeric", "c": "categorical"})
    assert model.fill_ == {"x": 2.0, "c": "a"}  # the mean; the most frequent category
    assert model.shares_["c"] == {"a": 2 / 3, "b": 1 / 3}
    raw = model._column(pd.Series(["b", None, "new"]), "c", "categorical")
    assert raw.tolist() == [1 / 3, 2 / 3, 0.0]  # missing -> "a"; unseen -> share 0
    given = pd.Series([np.nan, np.inf, 5.0])
    assert model._column(given, "x", "numeric").tolist() == [2.0, 2.0, 5.0]  # filled in a copy
    assert np.isnan(given[0]) and np.isinf(given[1])  # the frame's own values are untouched


def test_a_pandas_category_column_is_encoded_as_its_values():
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": [1.0, 1.0, 2.0, None]}).astype(
        {"c": object}
    )
    model = fit_reconstruction(ref, {"x": "numeric", "c": "categorical"})
    plain = pd.Series([2.0, None, 7.0, 1.0, 1.0], dtype=object)
    # numeric-looking categories (spelled "1.0" as the plain values are), an unused category,
    # one unseen, a missing value
    coded = pd.Series(pd.Categorical(plain, categories=[1.0, 2.0, 7.0, 9.0]))
    assert isinstance(coded.dtype, pd.CategoricalDtype)
    want = model._column(plain, "c", "categorical")
    assert want.tolist() == [1 / 3, 2 / 3, 0.0, 2 / 3, 2 / 3]
    assert model._column(coded, "c", "categorical").tolist() == want.tolist()
    assert model._column(coded.iloc[2:], "c", "categorical").tolist() == want[2:].tolist()
    # the same column with other categories (another file's dictionary): looked up again
    recoded = pd.Series(pd.Categorical(plain, categories=[7.0, 2.0, 1.0]))
    assert model._column(recoded, "c", "categorical").tolist() == want.tolist()
    assert model._column(coded, "c", "categorical").tolist() == want.tolist()


def test_a_shift_in_a_real_table():
    """Palmer penguins (344 rows, ships with its package): the body measures, species and
    island; in the last two of four current windows the bill length is swapped for the
    flipper length's rank-matched values, breaking how the measures go together."""
    data = load_penguins().sample(frac=1.0, random_state=0).reset_index(drop=True)
    kinds = {
        "bill_length_mm": "numeric",
        "bill_depth_mm": "numeric",
        "flipper_length_mm": "numeric",
        "body_mass_g": "numeric",
        "species": "categorical",
        "island": "categorical",
    }
    ref, cur = data.iloc[:200].reset_index(drop=True), data.iloc[200:].reset_index(drop=True)
    ref_w, cur_w = cut(ref, cur, "4 windows")
    late = np.concatenate([cur_w[2].index, cur_w[3].index])
    # reverse the bill length's order within the late rows: same values, opposite structure
    bills = cur.loc[late, "bill_length_mm"]
    order = (
        cur.loc[late, "body_mass_g"].rank(method="first", na_option="bottom").to_numpy().astype(int)
        - 1
    )
    cur.loc[late, "bill_length_mm"] = np.sort(bills.to_numpy())[::-1][order]
    out = multivariate_drift(ref, cur, kinds, ref_w, cur_w)
    assert out.loc[out["period"] == "current", "alert"].tolist() == [False, False, True, True]


def test_one_column_gives_an_empty_table_with_the_schema():
    ref, cur = butterfly()
    out = multivariate_drift(ref, cur, {"f1": "numeric"}, *cut(ref, cur))
    assert out.empty and list(out.columns) == COLUMNS


def test_a_column_without_values_names_it():
    ref, cur = butterfly()
    ref["f3"] = np.nan
    with pytest.raises(DataValidationError, match=r"column 'f3' has no present values.*exclude"):
        multivariate_drift(ref, cur, KINDS, *cut(ref, cur))


def test_windows_index_rows_by_position_not_by_label():
    ref, cur = butterfly()
    relabelled = cur.set_axis(np.random.default_rng(1).permutation(len(cur)))
    out = multivariate_drift(ref, relabelled, KINDS, *cut(ref, cur))
    assert out.loc[out["period"] == "current", "alert"].tolist() == SHIFTED


def test_reference_values_come_from_rows_the_pca_did_not_see():
    ref, cur = butterfly()
    ref_w, cur_w = cut(ref, cur)
    fit, held = halves(len(ref))
    model = fit_reconstruction(ref.iloc[fit], KINDS)
    rows = np.intersect1d(ref_w[0].index, held)
    expected = model.errors(ref.iloc[rows]).mean()
    out = multivariate_drift(ref, cur, KINDS, ref_w, cur_w)
    assert out.loc[out["period"] == "reference", "value"].iloc[0] == pytest.approx(expected)


@pytest.mark.parametrize("n", [1, 2, 7, 200, 500_000])
def test_the_halves_are_a_seeded_permutations_two_halves_in_order(n):
    fit, held = halves(n)
    order = np.random.default_rng(0).permutation(n)
    np.testing.assert_array_equal(fit, np.sort(order[: n // 2]))
    np.testing.assert_array_equal(held, np.sort(order[n // 2 :]))


PENGUIN_KINDS = {
    "bill_length_mm": "numeric",
    "bill_depth_mm": "numeric",
    "flipper_length_mm": "numeric",
    "body_mass_g": "numeric",
    "species": "categorical",
    "island": "categorical",
    "sex": "categorical",
}


@pytest.mark.parametrize("held_as", ["matrices", "streams"])
def test_fitting_on_matrices_gives_the_streamed_model_and_errors(held_as, monkeypatch, tmp_path):
    """Palmer penguins (missing numbers and sexes; species as a pandas category), from a frame
    and from a Parquet file: the halves held as matrices give the model and held-out errors
    that fitting a stream of rows and streaming the held rows give (the covariance summed in
    another order: equal to 1e-12); above ``MATRIX_BYTES`` the rows are streamed."""
    from lib.core.frames import ParquetColumns
    from lib.monitoring import multivariate

    data = load_penguins().astype({"species": "category"})
    data.to_parquet(tmp_path / "penguins.parquet", index=False)
    fit, held = halves(len(data))
    if held_as == "streams":
        monkeypatch.setattr(multivariate, "MATRIX_BYTES", 0)
    for source in (data, ParquetColumns(tmp_path / "penguins.parquet")):
        model = fit_reconstruction(source, PENGUIN_KINDS, rows=fit)
        expected = model.errors(source, held)
        got_model, got = fit_and_score(source, PENGUIN_KINDS, fit, held)
        assert got_model.fill_ == model.fill_ and got_model.shares_ == model.shares_
        assert np.array_equal(got_model.mean_, model.mean_)
        assert np.array_equal(got_model.scale_, model.scale_)
        assert got_model.n_components_ == model.n_components_ == 2
        np.testing.assert_allclose(
            np.abs(got_model.components_), np.abs(model.components_), rtol=0, atol=1e-12
        )
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        if held_as == "streams":
            assert np.array_equal(got, expected)  # the same computation


def test_a_real_table_split_at_random_raises_few_chance_alerts():
    """statsmodels' randhie (20,190 rows) split at random, nothing shifted: 4,000 reference rows
    (4 windows of 1,000) and 5 current windows. With the PCA fitted on every reference row and a
    band from those 4 windows alone (NannyML's way), 20 % of current windows alerted over 20
    splits; fitted on half, the band from the other half and topped up to 20 values, 1 %."""
    rates = []
    for ref, cur, kinds in randhie_splits(10):
        out = multivariate_drift(ref, cur, kinds, *cut(ref, cur, "5 windows"))
        rates.append(out.loc[out["period"] == "current", "alert"].mean())
    print(f"chance alerts per window: {np.mean(rates):.3f}")
    assert np.mean(rates) < 0.06


def test_a_small_reference_is_scored_out_of_fold():
    """Below 200 rows every reference row's error comes from a PCA fitted without its fold."""
    ref, cur = butterfly()
    small = ref.iloc[:120].reset_index(drop=True)
    errors = out_of_fold(small, KINDS)
    folds = np.array_split(np.random.default_rng(0).permutation(120), FOLDS)
    for fold in folds:
        rest = np.setdiff1d(np.arange(120), fold)
        model = fit_reconstruction(small.iloc[rest], KINDS)
        assert errors[fold] == pytest.approx(model.errors(small.iloc[fold]))
    out = multivariate_drift(small, cur.iloc[:300], KINDS, *cut(small, cur.iloc[:300], "5 windows"))
    first = out[out["period"] == "reference"].iloc[0]
    assert first["value"] == pytest.approx(errors[: first["rows"]].mean())


def test_a_small_real_table_split_at_random_raises_few_chance_alerts():
    """scikit-learn's diabetes split at random, nothing shifted: 88 reference rows (a test
    split's size for its 442) and 300 current rows in 5 windows, 20 splits. With the PCA fitted
    on every reference row, 30 % of current windows alerted, in 55 % of runs; scored out of fold
    with the band widened for its centre's error, 7 % (10 % of runs)."""
    data = load_diabetes(as_frame=True).frame.drop(columns="target")
    kinds = dict.fromkeys(data.columns, "numeric")
    rates = []
    for seed in range(20):
        order = np.random.default_rng(seed).permutation(len(data))
        ref = data.iloc[order[:88]].reset_index(drop=True)
        cur = data.iloc[order[88:388]].reset_index(drop=True)
        out = multivariate_drift(ref, cur, kinds, *cut(ref, cur, "5 windows"))
        rates.append(out.loc[out["period"] == "current", "alert"].mean())
    print(f"chance alerts per window: {np.mean(rates):.3f}")
    assert np.mean(rates) < 0.12
