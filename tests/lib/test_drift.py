"""The drift engine: each statistic against SciPy and Evidently, verdicts, detection power."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from lib.core.errors import DataValidationError, ParamsError
from lib.data import drift, drift_profile, drift_stats


def numeric(n: int, seed: int, shift: float = 0.0) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(10 + shift, 2, n))


def categorical(n: int, seed: int, probs=(0.5, 0.3, 0.2), values=("a", "b", "c")) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).choice(values, n, p=probs))


def col(
    values: pd.Series,
    kind: drift_profile.Kind = "numeric",
    exact_max: int = drift_profile.EXACT_MAX,
):
    return drift_profile.profile_column("x", values, kind, exact_max)


# --- statistics against SciPy ----------------------------------------------------------------


def test_ks_equals_scipy_on_exact_profiles():
    ref, cur = numeric(800, 0), numeric(600, 1, 0.3)
    got = drift.column_drift(col(ref), cur, "ks").score
    assert got == pytest.approx(stats.ks_2samp(ref, cur).pvalue, rel=1e-12)


def test_wasserstein_equals_scipy():
    ref, cur = numeric(5000, 0), numeric(3000, 1, 0.4)
    ours = drift_stats.wasserstein(np.sort(ref.to_numpy()), np.sort(cur.to_numpy()))
    assert ours == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-10)
    normed = drift.column_drift(col(ref), cur, "wasserstein").score
    assert normed == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-10)


def test_chisquare_is_scipys_test_of_homogeneity_of_the_two_samples():
    ref, cur = categorical(900, 0), categorical(400, 1, (0.4, 0.4, 0.2))
    rc, cc = ref.value_counts(), cur.value_counts()
    table = np.vstack([rc[["a", "b", "c"]].to_numpy(), cc[["a", "b", "c"]].to_numpy()])
    want = stats.chi2_contingency(table, correction=False).pvalue
    assert drift.column_drift(col(ref, "categorical"), cur, "chisquare").score == pytest.approx(
        want, rel=1e-12
    )


def test_chisquare_does_not_call_a_category_a_small_reference_missed_drift():
    """plotly's tips: the whole table against a 49-row sample of itself (a test split's size).
    Evidently's goodness of fit takes the sample's shares as exact, so the parties of a size the
    sample missed made 'size' drift with p = 0; the two samples do not differ."""
    from pathlib import Path

    import plotly

    packaged = Path(plotly.__file__).parent / "package_data" / "datasets" / "tips.csv.gz"
    tips = pd.read_csv(packaged, compression="gzip")
    size = tips["size"].astype(str)
    missing = [s for s in range(40) if set(size) - set(size.sample(49, random_state=s))]
    assert len(missing) >= 5  # samples that miss a party size the table has
    for seed in missing[:5]:
        sample = size.sample(49, random_state=seed)
        ours = drift.column_drift(col(sample, "categorical"), size, "chisquare")
        assert not ours.drifted and ours.score > 0.05
        # the goodness of fit (Evidently's) on the same counts: p = 0 (an expected count of 0)
        shares = sample.value_counts().reindex(sorted(set(size)), fill_value=0) / len(sample)
        observed = size.value_counts().reindex(shares.index).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            gof = stats.chisquare(observed, shares.to_numpy() * len(size)).pvalue
        assert not gof > 1e-6  # 0 or NaN: "drifted" on Evidently's reading


def test_jensenshannon_equals_scipy_on_category_shares():
    ref, cur = categorical(2000, 0), categorical(1500, 1, (0.2, 0.3, 0.5))
    p = ref.value_counts(normalize=True)[["a", "b", "c"]].to_numpy()
    q = cur.value_counts(normalize=True)[["a", "b", "c"]].to_numpy()
    got = drift.column_drift(col(ref, "categorical"), cur, "jensenshannon").score
    assert got == pytest.approx(distance.jensenshannon(p, q), rel=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_jensenshannon_is_scipys_to_the_last_bit(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 40))
    p, q = rng.random(k) * rng.integers(0, 2, k), rng.random(k) + 1e-9  # zeros on one side
    p[0] += 0.1  # never all zero
    assert drift_stats.jensenshannon(p, q) == float(distance.jensenshannon(p, q))
    assert drift_stats.jensenshannon(q, q) == float(distance.jensenshannon(q, q)) == 0.0


def test_z_test_equals_the_two_proportion_formula():
    ref = categorical(500, 0, (0.7, 0.3), ("no", "yes"))
    cur = categorical(400, 1, (0.55, 0.45), ("no", "yes"))
    p1, p2 = (ref == "yes").mean(), (cur == "yes").mean()
    pooled = (p1 * 500 + p2 * 400) / 900
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / 500 + 1 / 400))
    got = drift.column_drift(col(ref, "categorical"), cur, "z").score
    assert got == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def evidently_stattest(method: str, kind: str, ref: pd.Series, cur: pd.Series):
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    kind_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    return get_registered_stattest(method, kind_type)(ref, cur, kind_type, None)


@pytest.mark.parametrize("method", ["psi", "jensenshannon", "wasserstein", "ks"])
def test_numeric_statistics_equal_evidentlys_own(method):
    ref, cur = numeric(3000, 0), numeric(2000, 1, 0.25)
    want = evidently_stattest(method, "numeric", ref, cur)
    got = drift.column_drift(col(ref), cur, method)
    assert got.score == pytest.approx(float(want.drift_score), rel=1e-9)
    assert got.drifted == want.drifted


@pytest.mark.parametrize("method", ["psi", "jensenshannon", "z"])
def test_categorical_statistics_equal_evidentlys_own(method):
    values = ("a", "b") if method == "z" else ("a", "b", "c", "d")
    probs = (0.6, 0.4) if method == "z" else (0.4, 0.3, 0.2, 0.1)
    ref = categorical(3000, 0, probs, values)
    cur = categorical(2000, 1, probs[::-1], values)
    want = evidently_stattest(method, "categorical", ref, cur)
    got = drift.column_drift(col(ref, "categorical"), cur, method)
    assert got.score == pytest.approx(float(want.drift_score), rel=1e-9)
    assert got.drifted == want.drifted


def test_new_category_in_current_drifts_chisquare_without_warnings():
    ref = categorical(500, 0)
    cur = pd.concat([categorical(450, 1), pd.Series(["new"] * 50)], ignore_index=True)
    with np.errstate(all="raise"):
        result = drift.column_drift(col(ref, "categorical"), cur)
    assert result.method == "chisquare" and result.drifted and result.score < 1e-6


# --- the approximate profile of large references ---------------------------------------------


def test_quantile_profile_of_large_reference_stays_within_a_thousandth():
    ref, cur = numeric(300_000, 0), numeric(200_000, 1, 0.1)
    approx = col(ref, exact_max=10_000)
    assert not approx.exact and len(approx.values) == 10_000
    exact = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert drift.column_drift(approx, cur).score == pytest.approx(exact, abs=1e-3)
    p_exact = stats.ks_2samp(ref, cur).pvalue
    assert drift.column_drift(approx, cur, "ks").drifted == (p_exact <= 0.05)


def test_profile_round_trips_through_its_file(tmp_path):
    frame = pd.DataFrame({"n": numeric(20_000, 0), "c": categorical(20_000, 1)})
    profile = drift_profile.build_profile(
        frame, {"n": "numeric", "c": "categorical"}, exact_max=1000
    )
    profile.save(tmp_path / "p.npz")
    loaded = drift_profile.Profile.load(tmp_path / "p.npz")
    assert loaded.rows == 20_000
    assert np.array_equal(loaded.columns["n"].values, profile.columns["n"].values)
    assert loaded.columns["c"].counts == profile.columns["c"].counts
    assert loaded.columns["n"].std == profile.columns["n"].std


def test_unreadable_profile_names_the_file_and_the_fix(tmp_path):
    bad = tmp_path / "drift_profile.npz"
    bad.write_bytes(b"not a profile")
    with pytest.raises(
        DataValidationError, match=r"drift_profile.npz: not a readable drift profile"
    ):
        drift_profile.Profile.load(bad)


# --- defaults and the check ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_ref", "kind", "n_values", "method"),
    [
        (1000, "numeric", 50, "ks"),
        (1001, "numeric", 50, "wasserstein"),
        (500, "numeric", 4, "chisquare"),
        (500, "numeric", 2, "z"),
        (5000, "numeric", 4, "jensenshannon"),
        (800, "categorical", 3, "chisquare"),
        (800, "categorical", 2, "z"),
        (1500, "categorical", 3, "jensenshannon"),
    ],
)
def test_default_method_follows_evidently(n_ref, kind, n_values, method):
    rng = np.random.default_rng(0)
    values = rng.integers(0, n_values, n_ref).astype(float)
    series = pd.Series(values if kind == "numeric" else values.astype(int).astype(str))
    result = drift.column_drift(col(series, kind), series.sample(300, random_state=1))
    assert result.method == method


def test_check_rejects_unknown_methods_columns_and_missing_data():
    frame = pd.DataFrame({"n": numeric(100, 0), "c": categorical(100, 1)})
    profile = drift_profile.build_profile(frame, {"n": "numeric", "c": "categorical"})
    with pytest.raises(ParamsError, match=r"monitor.methods.n: unknown method 'kss'"):
        drift.check_drift(profile, frame, methods={"n": "kss"})
    with pytest.raises(ParamsError, match=r"'c' is categorical; ks applies to numeric"):
        drift.check_drift(profile, frame, methods={"c": "ks"})
    with pytest.raises(ParamsError, match=r"monitor.thresholds: \['zz'\] are not monitored"):
        drift.check_drift(profile, frame, thresholds={"zz": 0.1})
    with pytest.raises(DataValidationError, match=r"column 'c' is missing from the current data"):
        drift.check_drift(profile, frame[["n"]])
    empty = frame.assign(n=np.nan)
    with pytest.raises(DataValidationError, match=r"'n': no present values in the current data"):
        drift.check_drift(profile, empty)


def test_dataset_drift_at_the_share_threshold():
    ref = pd.DataFrame({f"f{i}": numeric(2000, i) for i in range(4)})
    cur = pd.DataFrame({f"f{i}": numeric(2000, 10 + i, 1.0 if i < 2 else 0.0) for i in range(4)})
    profile = drift_profile.build_profile(ref, dict.fromkeys(ref.columns, "numeric"))
    report = drift.check_drift(profile, cur, drift_share=0.5)
    assert [c.drifted for c in report.columns] == [True, True, False, False]
    assert report.drifted_share == 0.5 and report.dataset_drift
    assert not drift.check_drift(profile, cur, drift_share=0.75).dataset_drift
    assert set(report.table()["column"][:2]) == {"f0", "f1"}  # drifted first


# --- Evidently as the oracle -----------------------------------------------------------------


def mixed(n: int, seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s = 1.0 if shifted else 0.0
    return pd.DataFrame(
        {
            "n_shift": rng.normal(50 + 4 * s, 8, n),
            "n_same": rng.gamma(2.0, 3.0, n),
            "n_few": rng.integers(0, 4, n).astype(float),
            "n_missing": np.where(rng.random(n) < 0.1, np.nan, rng.normal(0, 1, n)),
            "c_shift": rng.choice(
                ["x", "y", "z"], n, p=[0.3, 0.3, 0.4] if shifted else [0.5, 0.3, 0.2]
            ),
            "c_same": rng.choice(["u", "v", "w", "q"], n),
            "c_binary": rng.choice(["yes", "no"], n, p=[0.5, 0.5]),
            "b_flag": rng.random(n) < (0.6 if shifted else 0.3),
        }
    )


KINDS = {
    "n_shift": "numeric",
    "n_same": "numeric",
    "n_few": "numeric",
    "n_missing": "numeric",
    "c_shift": "categorical",
    "c_same": "categorical",
    "c_binary": "categorical",
    "b_flag": "categorical",
}


@pytest.mark.parametrize("n_ref", [600, 5000], ids=["tests", "distances"])
@pytest.mark.parametrize("shifted", [False, True], ids=["same", "shifted"])
def test_same_verdict_method_and_score_as_evidently(n_ref, shifted):
    from lib.monitoring.evidently_report import drift_verdicts

    ref, cur = mixed(n_ref, 0, False), mixed(n_ref // 2, 1, shifted)
    ours = drift.check_drift(drift_profile.build_profile(ref, KINDS), cur)
    theirs = drift_verdicts(ref, cur, KINDS)
    assert set(theirs) == set(KINDS)
    for c in ours.columns:
        if c.method == "chisquare":  # a test of homogeneity, not Evidently's goodness of fit:
            # right where Evidently's is not (c_same, unshifted, is p = 0.022 on its reading)
            assert c.drifted == (shifted and c.column == "c_shift"), c
            continue
        assert c.drifted == theirs[c.column]["drifted"], (c, theirs[c.column])
        assert c.score == pytest.approx(theirs[c.column]["score"], rel=1e-6, abs=1e-12), c.column
    if shifted:
        assert {"n_shift", "c_shift", "b_flag"} <= {c.column for c in ours.columns if c.drifted}


def test_detection_power_and_false_alarms_over_100_seeded_trials():
    """A +0.5 sd mean shift in one of 10,000 rows' features: caught >= 95/100, <= 5 false alarms."""
    detected = false_alarms = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        ref = pd.DataFrame({"x": rng.normal(0, 1, 10_000)})
        profile = drift_profile.build_profile(ref, {"x": "numeric"})
        same = pd.DataFrame({"x": rng.normal(0, 1, 10_000)})
        moved = pd.DataFrame({"x": rng.normal(0.5, 1, 10_000)})
        detected += drift.check_drift(profile, moved).columns[0].drifted
        false_alarms += drift.check_drift(profile, same).columns[0].drifted
    assert detected >= 95
    assert false_alarms <= 5


@pytest.mark.parametrize("seed", range(4))
def test_the_undecorated_scipy_tests_give_the_decorated_ones_results(seed):
    # drift_stats calls ks_2samp and chisquare without SciPy's nan-policy decorator (speed)
    rng = np.random.default_rng(seed)
    ref = np.sort(rng.normal(0, 1, int(rng.integers(5, 3000))).round(1))
    cur = rng.normal(0.1, 1.2, int(rng.integers(1, 500))).round(1)
    col = drift_profile.profile_column("x", pd.Series(ref), "numeric")
    assert col.exact
    assert drift_stats.ks_pvalue(col, np.sort(cur)) == stats.ks_2samp(ref, np.sort(cur)).pvalue
    counts = dict(zip("abcd", rng.integers(0, 50, 4).tolist(), strict=True))
    cat = drift_profile.profile_column(
        "c", pd.Series(list("aabbbcccd") * int(rng.integers(1, 9))), "categorical"
    )
    ref_c, cur_c = drift_stats._category_pairs(cat, counts)
    table = np.vstack([ref_c, cur_c])
    want = stats.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False).pvalue
    assert drift_stats.chisquare_pvalue(cat, counts) == pytest.approx(want, rel=1e-12, abs=0)
    # the decorator is really bypassed
    assert drift_stats._undecorated("ks_2samp") is not stats.ks_2samp


@pytest.mark.parametrize(
    "kind",
    ["normal", "gamma", "heavy tails", "few values", "constant", "tiny", "extremes", "ties",
     "missing", "scores"],
)  # fmt: skip
def test_bucket_sorts_are_numpys_sorts(kind):
    from lib.data.drift_profile import sorted_floats, stable_order

    rng = np.random.default_rng(len(kind))
    values = {
        "normal": rng.normal(0, 1, 200_000),
        "gamma": rng.gamma(2.0, 2.0, 200_000) + 1e6,
        "heavy tails": rng.standard_cauchy(200_000),  # one bucket holds most: numpy's sort
        "few values": rng.integers(0, 5, 50_000).astype(float),
        "constant": np.full(5_000, 3.0),
        "tiny": rng.normal(0, 1, 7),
        "extremes": np.concatenate([rng.normal(0, 1, 5_000), [-1e300, 1e300, 0.0, -0.0]]),
        "ties": rng.normal(0, 1, 100_000).round(2),  # equal values keep their order
        "missing": np.where(rng.random(5_000) < 0.1, np.nan, rng.normal(0, 1, 5_000)),
        "scores": -(1 / (1 + np.exp(-rng.normal(0, 2, 50_000)))).round(4),
    }[kind]
    got = sorted_floats(values)
    np.testing.assert_array_equal(got, np.sort(values))
    assert len(got) == len(values) and got is not values
    np.testing.assert_array_equal(stable_order(values), np.argsort(values, kind="stable"))
