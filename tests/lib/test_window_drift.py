"""Drift per window: the whole-period engine's statistic per window, judged by a band."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.datasets import load_diabetes

from lib.core.errors import DataValidationError
from lib.core.param_sections import MonitorParams
from lib.data import drift, drift_stats
from lib.data.drift_profile import as_categories, build_profile, category_codes
from lib.monitoring import windows as w
from lib.monitoring.window_drift import COLUMNS, window_drift
from lib.monitoring.window_wasserstein import wasserstein
from tests.lib.window_tables import randhie_splits

N = 20_000  # rows per side: above 1,000, so distances (Evidently's rule for large references)
SHIFTED = [i in (2, 3) for i in range(20)]  # windows 3 and 4 of 20


def sides(shift_windows=(2, 3), seed=4):
    """Reference and current of N rows; in the current, windows 3 and 4 (of 20) are shifted.

    Twenty windows, because with few reference windows their standard deviation is a poor
    estimate (on unshifted data 6 windows gave 13 % false alerts per window and column). Even
    with 20, a distance's skewed spread makes mean + 3 sd give a few % false alerts per window
    and column, so the seed is one where no unshifted window alerts: seeds 0-7 gave 0-4 false
    alerts in 54 unshifted window-columns while every shifted window alerted in all of them.
    """
    rng = np.random.default_rng(seed)

    def frame(n):
        return pd.DataFrame(
            {
                "x": rng.normal(10, 2, n),
                "steady": rng.normal(0, 1, n),
                "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
            }
        )

    ref, cur = frame(N), frame(N)
    size = N // 20
    for i in shift_windows:
        rows = cur.index[i * size : (i + 1) * size]
        cur.loc[rows, "x"] += 2.0  # one standard deviation
        cur.loc[rows, "colour"] = rng.choice(["red", "green", "blue"], size, p=[0.2, 0.3, 0.5])
    return ref, cur


KINDS = {"x": "numeric", "steady": "numeric", "colour": "categorical"}


def cut(ref, cur, spec="20 windows"):
    parsed = w.parse_spec(spec)
    cur_w = w.split(len(cur), parsed)
    return w.reference_windows(len(ref), parsed, cur_w), cur_w


def alerts(out, column):
    rows = out[(out["period"] == "current") & (out["column"] == column)]
    return rows["alert"].tolist()


def test_only_the_shifted_windows_alert():
    ref, cur = sides()
    ref_w, cur_w = cut(ref, cur)
    out = window_drift(ref, cur, KINDS, ref_w, cur_w, MonitorParams())
    assert alerts(out, "x") == SHIFTED
    assert alerts(out, "colour") == SHIFTED
    assert not any(alerts(out, "steady"))
    methods = out.groupby("column")["method"].unique().to_dict()
    assert methods == {"x": ["wasserstein"], "steady": ["wasserstein"], "colour": ["jensenshannon"]}


def test_a_distance_alerts_above_the_reference_windows_band_only():
    ref, cur = sides()
    ref_w, cur_w = cut(ref, cur)
    out = window_drift(ref, cur, KINDS, ref_w, cur_w, MonitorParams(sigmas=2.0))
    x = out[out["column"] == "x"]
    ref_stats = x.loc[x["period"] == "reference", "statistic"].to_numpy()
    assert len(ref_stats) == 20
    expected = ref_stats.mean() + 2.0 * ref_stats.std()
    assert x["upper"].to_numpy() == pytest.approx(np.full(40, expected))
    assert x["lower"].isna().all()  # distances alert upwards only
    cur_rows = x[x["period"] == "current"]
    assert (cur_rows["alert"] == (cur_rows["statistic"] > expected)).all()


def test_schema_and_row_windows_have_no_times():
    ref, cur = sides()
    ref_w, cur_w = cut(ref, cur)
    out = window_drift(ref, cur, KINDS, ref_w, cur_w, MonitorParams())
    assert list(out.columns) == COLUMNS
    assert len(out) == 3 * (len(ref_w) + len(cur_w))
    assert out["start"].isna().all() and out["end"].isna().all()
    assert out["alert"].dtype == bool
    assert set(out["rows"]) == {1000}


def test_period_windows_carry_their_bounds():
    ref, cur = sides(shift_windows=())
    ref_t = pd.Series(pd.date_range("2024-01-01", periods=N, freq="h"))
    cur_t = pd.Series(pd.date_range("2025-01-01", periods=N, freq="h"))
    spec = w.parse_spec("1M")
    cur_w = w.split(N, spec, cur_t)
    ref_w = w.reference_windows(N, spec, cur_w, ref_t)
    out = window_drift(ref, cur, {"x": "numeric"}, ref_w, cur_w, MonitorParams())
    first = out[out["period"] == "current"].iloc[0]
    assert (first["window"], first["start"], first["end"]) == (
        "2025-01",
        pd.Timestamp("2025-01-01"),
        pd.Timestamp("2025-02-01"),
    )


@pytest.mark.parametrize(
    ("n_ref", "column", "kind", "method"),
    [
        (N, "x", "numeric", "wasserstein"),
        (N, "colour", "categorical", "jensenshannon"),
        (N, "few", "numeric", "jensenshannon"),  # a numeric column with 3 values
        (800, "x", "numeric", "ks"),
        (800, "colour", "categorical", "chisquare"),
        (800, "pair", "categorical", "z"),
    ],
)
def test_one_window_over_the_whole_current_gives_the_engines_statistic(n_ref, column, kind, method):
    ref, cur = sides()
    for frame in (ref, cur):
        frame["few"] = np.round(frame["steady"]).clip(-1, 1)
        frame["pair"] = np.where(frame["steady"] > 0.3, "yes", "no")
    ref = ref.iloc[:n_ref].reset_index(drop=True)
    profile = build_profile(ref, {column: kind})
    whole = [w.Window("all", np.arange(len(cur)))]
    out = window_drift(ref, cur, {column: kind}, cut(ref, cur)[0], whole, MonitorParams(),
                       profile=profile)  # fmt: skip
    got = out[out["period"] == "current"].iloc[0]
    engine = drift.column_drift(profile.columns[column], cur[column])
    assert (got["method"], engine.method) == (method, method)
    assert got["statistic"] == pytest.approx(engine.score, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(
    ("k", "m"), [(3000, 2000), (2000, 3000), (10_000, 49_731), (1, 5), (5, 1), (7, 7), (88, 60)]
)
def test_the_quantile_wasserstein_equals_the_engines_and_scipys_with_ties(k, m):
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(k + m)
    ref = np.sort(np.round(rng.normal(0, 1, k), 1))
    cur = np.sort(np.round(rng.normal(0.2, 1.3, m), 1))
    got = wasserstein(ref, cur)
    assert got == pytest.approx(drift_stats.wasserstein(ref, cur), rel=1e-12, abs=1e-15)
    assert got == pytest.approx(wasserstein_distance(ref, cur), rel=1e-12, abs=1e-15)
    assert got == pytest.approx(wasserstein(cur, ref), rel=1e-12, abs=1e-15)
    if k > 10 and m > 10:
        assert got > 0.1  # a real shift, not two empty samples


def test_p_values_of_a_run_are_judged_together_at_the_columns_threshold():
    """Benjamini-Hochberg over the current windows, checked against scipy's adjusted p-values."""
    ref, cur = sides()
    ref = ref.iloc[:800].reset_index(drop=True)  # a small reference: Evidently's tests
    ref_w, cur_w = cut(ref, cur)
    params = MonitorParams(thresholds={"x": 0.01})
    out = window_drift(ref, cur, {"x": "numeric", "steady": "numeric"}, ref_w, cur_w, params)
    cur_rows = out[out["period"] == "current"]
    assert (cur_rows["method"] == "ks").all() and out["upper"].isna().all()
    adjusted = stats.false_discovery_control(cur_rows["statistic"], method="bh")
    x = (cur_rows["column"] == "x").to_numpy()
    expected = np.where(x, adjusted <= 0.01, adjusted <= 0.05)
    assert cur_rows["alert"].tolist() == expected.tolist()
    assert alerts(out, "x") == SHIFTED and not alerts(out, "steady")[0]
    # the line drawn: k alerts among m tests at the column's threshold (k >= 1)
    m = len(cur_rows)
    assert (out.loc[out["column"] == "x", "lower"] == 2 * 0.01 / m).all()
    assert (out.loc[out["column"] == "steady", "lower"] == 2 * 0.05 / m).all()
    assert cur_rows["alert"].tolist() == (cur_rows["statistic"] <= cur_rows["lower"]).tolist()


def test_a_small_real_table_split_at_random_raises_almost_no_chance_alerts():
    """statsmodels' randhie, nothing shifted: 800 reference rows (so p-value tests) and 1,000
    current rows in 5 windows. Each window judged alone at 0.05 alerted in 75 % of 20 splits
    (1.6 chance alerts a run); judged together, in none."""
    runs = []
    for ref, cur, kinds in randhie_splits(10):
        ref, cur = ref.iloc[:800].reset_index(drop=True), cur.iloc[:1000]
        ref_w, cur_w = cut(ref, cur, "5 windows")
        out = window_drift(ref, cur, kinds, ref_w, cur_w, MonitorParams())
        current = out[out["period"] == "current"]
        assert set(current["method"]) <= {"ks", "chisquare", "z"}
        runs.append(int(current["alert"].sum()))
    print(f"chance alerts per run: {runs}")
    assert sum(n > 0 for n in runs) <= 2


def test_a_method_override_is_used_in_every_window():
    ref, cur = sides()
    ref_w, cur_w = cut(ref, cur)
    out = window_drift(
        ref, cur, {"x": "numeric"}, ref_w, cur_w, MonitorParams(methods={"x": "psi"})
    )
    assert set(out["method"]) == {"psi"}
    assert alerts(out, "x") == SHIFTED


def test_model_outputs_are_checked_when_both_sides_have_them():
    ref, cur = sides()
    for frame in (ref, cur):
        frame["prediction"] = np.where(frame["x"] > 11, "yes", "no")
        frame["proba_yes"] = 1 / (1 + np.exp(-(frame["x"] - 11)))
    ref_w, cur_w = cut(ref, cur)
    out = window_drift(ref, cur, {"steady": "numeric"}, ref_w, cur_w, MonitorParams())
    methods = out.groupby("column")["method"].first().to_dict()
    assert methods == {
        "steady": "wasserstein",
        "prediction": "jensenshannon",  # class labels: categorical
        "proba_yes": "wasserstein",
    }
    assert alerts(out, "proba_yes") == SHIFTED
    assert alerts(out, "prediction") == SHIFTED


def test_a_window_without_values_has_no_statistic_and_no_alert():
    ref, cur = sides()
    cur.loc[:999, "x"] = np.nan
    ref_w, cur_w = cut(ref, cur)
    out = window_drift(ref, cur, {"x": "numeric"}, ref_w, cur_w, MonitorParams())
    first = out[out["period"] == "current"].iloc[0]
    assert np.isnan(first["statistic"]) and not first["alert"]


def test_a_missing_column_names_the_side_and_the_fix():
    ref, cur = sides()
    ref_w, cur_w = cut(ref, cur)
    with pytest.raises(DataValidationError, match=r"current data: columns \['x'\].*exclude"):
        window_drift(ref, cur.drop(columns="x"), KINDS, ref_w, cur_w, MonitorParams())


def test_real_table_with_a_shift_in_two_windows():
    """Diabetes (442 rows, ships with scikit-learn): a small reference, so KS p-values."""
    data = load_diabetes(as_frame=True).frame
    rng = np.random.default_rng(7)
    ref = data.sample(frac=0.5, random_state=1)
    cur = data.drop(ref.index).sample(frac=1.0, random_state=2).reset_index(drop=True)
    ref = ref.reset_index(drop=True)
    ref_w, cur_w = cut(ref, cur, "4 windows")
    shifted = np.concatenate([cur_w[2].index, cur_w[3].index])
    cur.loc[shifted, "bmi"] += 1.5 * data["bmi"].std() + rng.normal(0, 1e-3, len(shifted))
    kinds = {c: "numeric" for c in ("age", "bmi", "bp", "s5")}
    out = window_drift(ref, cur, kinds, ref_w, cur_w, MonitorParams())
    assert (out["method"] == "ks").all()
    assert alerts(out, "bmi") == [False, False, True, True]
    assert sum(sum(alerts(out, c)) for c in ("age", "bp", "s5")) == 0


@pytest.mark.slow
def test_a_million_rows_in_fifty_windows_takes_seconds():
    import time

    rng = np.random.default_rng(0)
    n = 1_000_000
    ref = pd.DataFrame({f"x{i}": rng.normal(0, 1, n) for i in range(8)})
    ref["c"] = rng.choice(list("abcdefgh"), n)
    cur = ref.sample(frac=1.0, random_state=1).reset_index(drop=True)
    kinds = {c: ("categorical" if c == "c" else "numeric") for c in ref}
    ref_w, cur_w = cut(ref, cur, "50 windows")
    profile = build_profile(ref, kinds)
    start = time.perf_counter()
    out = window_drift(ref, cur, kinds, ref_w, cur_w, MonitorParams(), profile=profile)
    seconds = time.perf_counter() - start
    assert seconds < 20, f"{seconds:.1f} s"
    assert len(out) == 9 * 100


def test_category_codes_spell_categories_as_the_profile_does():
    values = pd.Series([1, "1", True, None, "b", 1.5, np.nan], dtype=object)
    codes, names = category_codes(values)
    assert [names[c] if c >= 0 else None for c in codes] == [
        "1", "1", "True", None, "b", "1.5", None,
    ]  # fmt: skip
    assert list(names) == list(dict.fromkeys(as_categories(values).dropna()))


def test_category_codes_are_the_smallest_integers_that_hold_them():
    few = pd.Series(pd.Categorical(["a", None, "b", "a"]))
    codes, names = category_codes(few)
    assert codes.dtype == np.int8 and codes.tolist() == [0, -1, 1, 0] and list(names) == ["a", "b"]
    many = pd.Series([f"v{i}" for i in range(300)] + [None])
    codes, names = category_codes(many)
    assert codes.dtype == np.int16 and codes[-1] == -1 and names[codes[299]] == "v299"


def test_windows_index_rows_by_position_not_by_label():
    ref, cur = sides()
    relabelled = cur.set_axis(np.random.default_rng(1).permutation(len(cur)))
    out = window_drift(ref, relabelled, KINDS, *cut(ref, cur), MonitorParams())
    assert alerts(out, "x") == SHIFTED and alerts(out, "colour") == SHIFTED


def test_threads_give_the_same_table_as_one_thread():
    """Diabetes (ships with scikit-learn) with a shift: one column per thread."""
    data = load_diabetes(as_frame=True).frame
    ref = data.sample(frac=0.5, random_state=1).reset_index(drop=True)
    cur = data.drop(data.sample(frac=0.5, random_state=1).index).reset_index(drop=True)
    first = cur.columns[0]
    cur.loc[: len(cur) // 4, first] += 2 * cur[first].std()
    kinds = dict.fromkeys(data.columns, "numeric")
    ref_w, cur_w = cut(ref, cur, "8 windows")
    one = window_drift(ref, cur, kinds, ref_w, cur_w, MonitorParams(threads=1))
    many = window_drift(ref, cur, kinds, ref_w, cur_w, MonitorParams(threads=3))
    pd.testing.assert_frame_equal(one, many)
    found = one[(one["period"] == "current") & one["alert"]]
    assert set(found["column"]) == {first} and set(found["window"]) == {"rows 1-28", "rows 29-56"}


def test_with_threads_the_first_bad_column_in_order_is_named():
    ref, cur = sides()
    ref["steady"] = np.nan  # no present value: an error for this column, the second one
    ref["colour"] = None  # and the third
    ref_w, cur_w = cut(ref, cur)
    with pytest.raises(DataValidationError, match="column 'steady': no present values"):
        window_drift(ref, cur, KINDS, ref_w, cur_w, MonitorParams(threads=3))


def test_a_reference_window_is_scored_against_the_rest_of_the_reference():
    """Leave one window out: each reference window is compared as a current one would be.

    8,000 reference rows: the profile keeps every value (above 10,000 it keeps quantiles, and
    the identity d(W, R) = (1 - share) d(W, rest) holds to the quantiles' precision)."""
    ref, cur = sides()
    ref = ref.iloc[:8000]
    ref_w, cur_w = cut(ref, cur)
    out = window_drift(ref, cur, KINDS, ref_w, cur_w, MonitorParams())
    first = out[(out["period"] == "reference") & (out["window"] == ref_w[0].key)]
    inside = ref.iloc[ref_w[0].index]
    rest = ref.drop(index=ref.index[ref_w[0].index])
    x = first.loc[first["column"] == "x"].iloc[0]
    assert x["method"] == "wasserstein"
    want = drift_stats.wasserstein(np.sort(rest["x"]), np.sort(inside["x"])) / ref["x"].std(ddof=0)
    assert x["statistic"] == pytest.approx(want, rel=1e-9)
    colour = first.loc[first["column"] == "colour"].iloc[0]
    rest_profile = build_profile(rest, {"colour": "categorical"}).columns["colour"]
    counts = inside["colour"].value_counts().to_dict()
    want = drift_stats.score("jensenshannon", rest_profile, counts, len(inside))
    assert colour["statistic"] == pytest.approx(want, rel=1e-9)


def test_a_real_table_split_at_random_raises_few_chance_alerts():
    """statsmodels' randhie (20,190 rows): a random 4,000-row reference and 5,000 current rows
    in 5 windows, nothing shifted. The reference gives 4 windows of 1,000 rows; scored in-sample
    with a band from those 4 alone, a quarter of the current window-columns alerted (25.2 % over
    10 splits); left out and topped up with drawn windows, 3.2 %."""
    rates = []
    for ref, cur, kinds in randhie_splits(5):
        ref_w, cur_w = cut(ref, cur, "5 windows")
        assert len(ref_w) == 4
        out = window_drift(ref, cur, kinds, ref_w, cur_w, MonitorParams())
        rates.append(out.loc[out["period"] == "current", "alert"].mean())
    print(f"chance alerts per window and column: {np.mean(rates):.3f}")
    assert np.mean(rates) < 0.06


@pytest.mark.parametrize(("n", "size"), [(10, 3), (500_000, 50_000), (1_000, 999), (7, 7)])
def test_drawn_rows_are_distinct_rows_drawn_by_the_columns_seed(n, size):
    import zlib

    from lib.monitoring.window_drift import _drawn

    windows = w.split(n, w.parse_spec(f"{size} rows"))
    drawn = _drawn(windows, "num_00")
    size = w.median_rows(windows)  # each drawn window as large as the median one
    assert drawn and all(len(rows) == size for rows in drawn)
    rng = np.random.default_rng(zlib.crc32(b"num_00"))
    for rows in drawn:  # the rows of a draw without replacement, in the order drawn
        np.testing.assert_array_equal(rows, rng.choice(n, size, replace=False, shuffle=False))
        assert len(np.unique(rows)) == size
    # the same rows as a shuffled draw (the shuffle only orders them)
    shuffled = np.random.default_rng(zlib.crc32(b"num_00")).choice(n, size, replace=False)
    np.testing.assert_array_equal(np.sort(drawn[0]), np.sort(shuffled))


def test_a_complete_columns_windows_are_read_only_views_and_a_gappy_ones_present_values():
    """Windows of a column without missing values are handed to the binned distance as views
    of the column (no copy), read-only so that no statistic can write into the column; a
    column with a missing value still drops it."""
    from lib.monitoring.window_drift import _Side

    values = pd.Series(np.random.default_rng(0).normal(size=1_000))
    side = _Side.of(values, "numeric")
    view = side.present(slice(100, 200), sort=False)
    assert np.shares_memory(view, side.values) and not view.flags.writeable
    assert np.array_equal(view, values.to_numpy()[100:200])
    assert side.values.flags.writeable  # the column itself is untouched
    gappy = values.copy()
    gappy[150] = np.nan
    present = _Side.of(gappy, "numeric").present(slice(100, 200), sort=False)
    assert len(present) == 99 and np.isfinite(present).all()
    drawn = side.present(np.array([5, 1, 3]), sort=False)  # drawn rows: a copy of their own
    assert drawn.tolist() == values.to_numpy()[[5, 1, 3]].tolist()
