"""Label-free performance per window: CBPE for classifiers, DLE for regression, bands, alerts."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score

from lib.core.errors import DataValidationError, ParamsError
from lib.monitoring import cbpe_calibration as calib
from lib.monitoring import estimate as est
from lib.monitoring import estimate_cbpe as cbpe
from lib.monitoring.inputs import Current
from lib.monitoring.windows import WindowSpec, parse_spec, reference_windows, split

BETA = np.array([1.5, -1.0, 0.5])


def _binary(rng, n, shift=0.0, beta=BETA):
    """Rows whose truth follows a fixed logistic model P(y|x); ``shift`` moves x only."""
    x = rng.normal(size=(n, 3)) + np.array([shift, 0, 0])
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ beta)))).astype(int)
    return pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=y)


def _scored(model, frame, features=("a", "b", "c")):
    proba = model.predict_proba(frame[list(features)])
    out = frame.assign(prediction=model.classes_[proba.argmax(axis=1)])
    return out.assign(**{f"proba_{c}": proba[:, j] for j, c in enumerate(model.classes_)})


@pytest.fixture(scope="module")
def binary_model():
    rng = np.random.default_rng(0)
    train = _binary(rng, 4000)
    return LogisticRegression().fit(train[["a", "b", "c"]], train["y"])


def _run(task, classes, ref, cur, size, **kw):
    spec = WindowSpec("rows", size)
    cur_w = split(len(cur), spec)
    ref_w = reference_windows(len(ref), spec, cur_w)
    return est.window_performance(task, classes, ref, cur, ref_w, cur_w, target="y", **kw)


def test_the_table_has_the_shared_schema_one_row_per_period_window_metric(binary_model):
    rng = np.random.default_rng(1)
    ref = _scored(binary_model, _binary(rng, 3000))
    cur = _scored(binary_model, _binary(rng, 2000))
    out = _run("binary", [0, 1], ref, cur, 500)
    assert tuple(out.columns) == est.COLUMNS
    assert out["metric"].iloc[0] == "roc_auc"  # the binary headline first
    assert len(out) == (6 + 4) * len(est.DEFAULT["binary"])
    assert set(out["period"]) == {"reference", "current"}
    assert out.duplicated(["period", "window", "metric"]).sum() == 0
    assert out["alert_estimated"].dtype == bool and out["start"].isna().all()
    assert (out["labelled_rows"] == out["rows"]).all()


def test_covariate_shift_the_estimate_tracks_realized_in_every_window(binary_model):
    rng = np.random.default_rng(2)
    ref = _scored(binary_model, _binary(rng, 20_000))
    # a moderate shift: scores stay within the reference's range, where the isotonic map is
    # learned (beyond it, its end blocks of probability 0 or 1 bias CBPE, NannyML's too)
    parts = [_binary(rng, 10_000), _binary(rng, 10_000, shift=0.8), _binary(rng, 10_000, -0.8)]
    cur = _scored(binary_model, pd.concat(parts, ignore_index=True))
    out = _run("binary", [0, 1], ref, cur, 5000)
    now = out[out["period"] == "current"]
    inside = (now["realized"] >= now["estimated_lower"]) & (
        now["realized"] <= now["estimated_upper"]
    )
    assert inside.all(), now.loc[~inside, ["window", "metric", "estimated", "realized"]]
    auc = now[now["metric"] == "roc_auc"]
    assert (auc["estimated"] - auc["realized"]).abs().max() < 0.02
    # the shift moved accuracy by several standard errors, and the estimate moved with it
    acc = now[now["metric"] == "accuracy"]
    assert acc["estimated"].iloc[2:].min() - acc["estimated"].iloc[:2].max() > 0.02
    assert acc["realized"].iloc[2:].min() - acc["realized"].iloc[:2].max() > 0.02


def test_concept_shift_the_estimate_holds_and_realized_leaves_its_band(binary_model):
    rng = np.random.default_rng(3)
    ref = _scored(binary_model, _binary(rng, 10_000))
    moved = _binary(rng, 10_000, beta=np.array([-0.5, -1.0, 0.5]))  # same x, new P(y|x)
    cur = _scored(binary_model, pd.concat([_binary(rng, 5000), moved], ignore_index=True))
    out = _run("binary", [0, 1], ref, cur, 5000)
    now = out[(out["period"] == "current") & (out["metric"] == "roc_auc")]
    before, after = now.iloc[0], now.iloc[-1]
    assert not now["alert_estimated"].any()  # the scores look as usual
    assert abs(after["estimated"] - before["estimated"]) < 0.02
    assert after["realized"] < after["estimated_lower"]
    assert after["alert_realized"] and not before["alert_realized"]


def test_roc_auc_walk_equals_roc_auc_when_probabilities_are_the_labels():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500)
    score = np.clip(0.3 * y + rng.random(500), 0, 1)
    assert cbpe.estimate_roc_auc(y.astype(float), score) == pytest.approx(
        roc_auc_score(y, score), abs=1e-9
    )


def test_estimated_roc_auc_walks_tied_scores_in_nannymls_order_where_it_matters():
    # the rows are sorted by bucket first, which orders tied scores otherwise than NannyML's
    # np.argsort(score)[::-1]: the same number when tied scores share their calibrated value
    # (a binary model's), NannyML's order when they do not
    rng = np.random.default_rng(11)
    score = rng.random(20_000).round(3)  # many ties

    def nannyml(calibrated: np.ndarray) -> float:
        p = calibrated[np.argsort(score)[::-1]]
        tps = np.r_[0.0, np.cumsum(p)].round(5)
        fps = np.r_[0.0, 1 + np.arange(len(p)) - np.cumsum(p)].round(5)
        return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))

    mapped = np.sqrt(score)  # a function of the score: ties share it
    assert cbpe.estimate_roc_auc(mapped, score) == nannyml(mapped)
    noisy = np.clip(score + rng.normal(0, 0.2, len(score)), 0, 1)  # ties do not
    assert cbpe.estimate_roc_auc(noisy, score) == nannyml(noisy)


@pytest.mark.parametrize("rows", [50, 200_000])
def test_the_calibrations_row_order_is_lexsorts(rows):
    rng = np.random.default_rng(rows)
    score = rng.random(rows).round(3)  # tied scores, ordered by truth, then position
    truth = (rng.random(rows) < score).astype(float)
    got = calib.by_score(score, truth)
    np.testing.assert_array_equal(got, np.lexsort((truth, score)))


def test_a_binary_models_calibrated_column_is_the_positive_class_of_the_full_matrix():
    rng = np.random.default_rng(12)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(int)
    for raw in (p**3, p):  # calibrated, and kept as scored
        proba = np.column_stack([1 - raw, raw])
        fitted = calib.fit_calibrator(y, proba)
        np.testing.assert_array_equal(fitted.positive(proba), fitted.apply(proba)[:, 1])
    assert calib.fit_calibrator(y, np.column_stack([1 - p**3, p**3])).calibrated == [False, True]


@pytest.mark.parametrize("classes", [2, 3])
def test_the_bootstraps_samples_get_the_numbers_of_the_same_rows_taken_directly(classes):
    # the resampler reads a compact copy of the resampled rows: the same rows must give the
    # same numbers, digit for digit (ties, unlabelled and unpredicted rows included)
    rng = np.random.default_rng(classes)
    n = 3000
    score = rng.dirichlet(np.ones(classes), n).round(2)  # rounded: many tied scores
    y = rng.integers(0, classes, n).astype(np.int8)
    p = score.argmax(axis=1).astype(np.int8)
    y[:7], p[7:9] = -1, -1  # unlabelled or unpredicted rows are not resampled
    rows = np.flatnonzero((y >= 0) & (p >= 0))
    metrics = cbpe.CLASS_METRICS + (cbpe.BINARY_ONLY if classes == 2 else ())
    resample = cbpe.resampler(y[rows], p[rows], score, rows, classes, metrics)
    unscored = cbpe.resampler(y[rows], p[rows], None, rows, classes, metrics)
    for seed in range(5):
        at = np.sort(np.random.default_rng(seed).integers(0, len(rows), 800))
        taken = rows[resample.order][at]
        want = cbpe.realized(y[taken], score[taken], p[taken], classes, metrics)
        assert resample(at) == want
        # without scores the counted metrics still use every class (3 here: not taken as 2)
        taken = rows[unscored.order][at]
        bare = cbpe.realized(y[taken], None, p[taken], classes, metrics)
        assert unscored(at) == pytest.approx(bare, nan_ok=True)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("metrics", [cbpe.CLASS_METRICS + cbpe.BINARY_ONLY, ("accuracy",)])
def test_the_bootstraps_samples_taken_together_get_the_numbers_of_each_sample(classes, metrics):
    from lib.monitoring.windows import sorted_draws

    metrics = tuple(m for m in metrics if classes == 2 or m not in cbpe.BINARY_ONLY)
    rng = np.random.default_rng(classes)
    n = 4000
    score = rng.dirichlet(np.ones(classes), n).round(2)  # rounded: many tied scores
    y = rng.integers(0, classes, n).astype(np.int8)
    p = score.argmax(axis=1).astype(np.int8)
    resample = cbpe.resampler(y, p, score, np.arange(n), classes, metrics)
    ones = np.flatnonzero(resample.y == 1)  # samples of one class only: ROC AUC undefined
    at = np.vstack([sorted_draws(rng, n, 500, 6), np.sort(rng.choice(ones, (2, 500)), axis=1)])
    together = resample.batch(at)
    one_by_one = [resample(row) for row in at]
    # digit for digit (NaN where undefined, in both)
    assert [json.dumps(d) for d in together] == [json.dumps(d) for d in one_by_one]
    assert any(np.isnan(d.get("roc_auc", 0.0)) for d in together) == ("roc_auc" in metrics)


def test_the_bootstraps_draws_taken_together_are_the_draws_one_by_one():
    from lib.monitoring.windows import sorted_draw, sorted_draws

    one, many = np.random.default_rng(4), np.random.default_rng(4)
    singles = [sorted_draw(one, 100_003, 2000) for _ in range(7)]
    assert np.array_equal(np.vstack(singles), sorted_draws(many, 100_003, 2000, 7))


def test_an_undefined_estimated_roc_auc_is_nan_without_a_warning():
    # a window whose calibrated probabilities expect no positive row (a reference window of a
    # few rows on a real log): NaN, and no "Mean of empty slice" in the stage's output
    calibrated = np.column_stack([np.ones(5), np.zeros(5)])
    score = np.column_stack([np.full(5, 0.6), np.full(5, 0.4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = cbpe.estimate(calibrated, score, np.zeros(5, dtype=np.int8), ("roc_auc", "accuracy"))
    assert np.isnan(got["roc_auc"]) and got["accuracy"] == 1.0


def test_the_expected_confusion_matrix_of_one_hot_probabilities_is_the_real_one():
    rng = np.random.default_rng(5)
    yi, pi = rng.integers(0, 3, 400), rng.integers(0, 3, 400)
    onehot = np.eye(3)[yi]
    score = rng.dirichlet(np.ones(3), 400)
    metrics = ("accuracy", "f1_macro", "precision_macro", "recall_macro")
    got = cbpe.estimate(onehot, score, pi, metrics)
    want = cbpe.realized(yi, score, pi, 3, metrics)
    assert got == pytest.approx(want)
    assert got["accuracy"] == pytest.approx(np.mean(yi == pi))


def test_calibration_is_fitted_only_where_it_helps():
    rng = np.random.default_rng(6)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(float)
    assert calib.needs_calibration(y, p**3)  # too low everywhere
    assert not calib.needs_calibration(np.ones(100), p[:100])  # one class
    assert not calib.needs_calibration(y, y + 0.01 * p)  # separates the classes perfectly
    fitted = calib.fit_calibrator(y.astype(int), np.column_stack([1 - p**3, p**3]))
    calibrated = fitted.apply(np.column_stack([1 - p**3, p**3]))[:, 1]
    deciles = np.digitize(p, np.linspace(0, 1, 11)[1:-1])
    for d in range(10):  # calibrated: each decile's mean probability is its rate of positives
        assert abs(calibrated[deciles == d].mean() - y[deciles == d].mean()) < 0.02


@pytest.mark.parametrize("rounding", [None, 2])  # continuous scores, and many ties
def test_the_isotonic_map_is_scikit_learns(rounding):
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(11)
    p = rng.random(4000)
    p = p if rounding is None else np.round(p, rounding)
    p[:50] = p[0] + rng.random(50) * 5e-16  # a chain of near ties, merged as scikit-learn does
    y = (rng.random(len(p)) < p**2).astype(float)
    theirs = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(p, y)
    at = np.r_[rng.random(1000), p, -1.0, 2.0]
    # the block means are rounded once (lib.monitoring.isotonic), scikit-learn's as they merge
    np.testing.assert_allclose(calib.isotonic_fit(p, y)(at), theirs.predict(at), rtol=0, atol=3e-16)


@pytest.mark.parametrize(("rows", "classes"), [(40, 2), (1001, 2), (5003, 7)])
def test_the_calibration_splits_are_scikit_learns(rows, classes):
    from sklearn.model_selection import StratifiedShuffleSplit

    y = np.random.default_rng(rows).integers(0, classes, rows).astype(float)
    theirs = StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=42)
    ours = calib.stratified_splits(y, splits=10, test_size=0.1, seed=42)
    for (a_train, a_test), (b_train, b_test) in zip(theirs.split(y, y), ours, strict=True):
        assert np.array_equal(a_train, b_train) and np.array_equal(a_test, b_test)


def test_a_class_of_one_row_is_not_calibrated_and_does_not_fail():
    # scikit-learn's splitter raised "The least populated classes in y have only 1 member"
    p = np.linspace(0.01, 0.99, 200)
    y = np.zeros(200)
    y[120] = 1.0
    assert not calib.needs_calibration(y, p**3)
    labels = np.where(np.arange(200) == 120, 2, np.arange(200) % 2)
    score = np.column_stack([p / 2, p / 2, 1 - p])
    assert calib.fit_calibrator(labels, score).calibrated[2] is False


def test_the_calibration_test_samples_a_big_reference(monkeypatch):
    monkeypatch.setattr(calib, "CHECK_ROWS", 5_000)
    rng = np.random.default_rng(7)
    p = rng.random(3 * calib.CHECK_ROWS)
    y = (rng.random(len(p)) < p).astype(float)
    seen: list[int] = []
    real = calib.roc_auc
    monkeypatch.setattr(calib, "roc_auc", lambda t, s: seen.append(len(t)) or real(t, s))
    assert calib.needs_calibration(y, p**3) and seen == [calib.CHECK_ROWS]
    # drawn from the whole reference, not its head: a head-only sample would see no positives
    y[: calib.CHECK_ROWS] = 0
    assert calib.needs_calibration(y, p) and seen[-1] == calib.CHECK_ROWS


def test_multiclass_calibration_renormalises_to_probabilities():
    rng = np.random.default_rng(7)
    score = rng.dirichlet(np.ones(3), 3000)
    yi = np.array([rng.choice(3, p=s) for s in score**2 / (score**2).sum(1, keepdims=True)])
    calibrator = calib.fit_calibrator(yi, score)
    out = calibrator.apply(score)
    assert any(calibrator.calibrated)
    assert np.allclose(out.sum(axis=1), 1) and (out >= 0).all()


def _regression(rng, n, shift=0.0):
    """y = 2a - b + noise; the noise is five times larger where a > 1.5."""
    x = rng.normal(size=(n, 3))
    x[:, 0] += shift
    noise = 0.3 + 1.5 * (x[:, 0] > 1.5)
    y = 2 * x[:, 0] - x[:, 1] + noise * rng.normal(size=n)
    return pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=y)


def test_dle_estimated_mae_rises_where_x_moved_to_a_noisier_region():
    rng = np.random.default_rng(8)
    train = _regression(rng, 2000)
    model = LinearRegression().fit(train[["a", "b", "c"]], train["y"])
    ref = _regression(rng, 6000)
    parts = [_regression(rng, 2000), _regression(rng, 2000, shift=2.0), _regression(rng, 2000)]
    cur = pd.concat(parts, ignore_index=True).drop(columns="y")  # no labels came back
    ref, cur = (f.assign(prediction=model.predict(f[["a", "b", "c"]])) for f in (ref, cur))
    out = _run("regression", None, ref, cur, 1000)
    now = out[(out["period"] == "current") & (out["metric"] == "mae")].reset_index()
    noisy = now.index.isin([2, 3])
    assert (now.loc[noisy, "estimated"] > 2 * now.loc[~noisy, "estimated"].max()).all()
    assert now.loc[noisy, "alert_estimated"].all() and not now.loc[~noisy, "alert_estimated"].any()
    assert now["realized"].isna().all() and (now["labelled_rows"] == 0).all()
    assert not now["alert_realized"].any()
    # reference windows are estimated out-of-fold: close to, but not equal to, realized
    past = out[(out["period"] == "reference") & (out["metric"] == "mae")]
    assert (past["estimated"] - past["realized"]).abs().max() < 0.05
    assert not np.allclose(past["estimated"], past["realized"])


def test_dle_takes_categories_dates_and_many_ids():
    rng = np.random.default_rng(14)
    n = 1200
    kind = rng.choice(["calm", "wild"], n)
    y = rng.normal(size=n) * np.where(kind == "wild", 3.0, 0.3)
    frame = pd.DataFrame(
        {
            "kind": kind,
            "flag": rng.random(n) < 0.5,
            "day": pd.date_range("2026-01-01", periods=n, freq="h"),
            "id": [f"u{i}" for i in range(n)],  # more categories than the boosting bins
            "y": y,
            "prediction": np.zeros(n),
        }
    )
    ref, cur = frame.iloc[:800].reset_index(drop=True), frame.iloc[800:].reset_index(drop=True)
    cur = cur.assign(kind=np.where(np.arange(400) < 200, "calm", "wild"))
    out = _run("regression", None, ref, cur, 200, metrics=["mae"])
    now = out[out["period"] == "current"]["estimated"].to_numpy()
    assert now[1] > 4 * now[0]  # the wild kind's errors are ten times larger


def test_breast_cancer_table_in_windows():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "y"})
    data = data.sample(frac=1, random_state=0).reset_index(drop=True)
    features = ["mean radius", "mean texture", "mean smoothness", "worst concavity"]
    model = LogisticRegression(max_iter=2000).fit(data.loc[:199, features], data.loc[:199, "y"])
    ref = _scored(model, data.loc[200:399].reset_index(drop=True), features)
    cur = _scored(model, data.loc[400:].sort_values("mean radius").reset_index(drop=True), features)
    out = _run("binary", [0, 1], ref, cur, 60)
    now = out[out["period"] == "current"]
    for name in ("roc_auc", "accuracy", "f1_macro"):
        rows = now[now["metric"] == name]
        assert rows["estimated"].between(0, 1).all()
        assert (rows["estimated_lower"] <= rows["estimated"]).all()
    # large tumours are easy, mid-sized ones hard: the estimate sees it without labels
    acc = now[now["metric"] == "accuracy"]["estimated"].to_numpy()
    assert acc[-1] > acc[1] + 0.05
    hits = (now["realized"] >= now["estimated_lower"]) & (now["realized"] <= now["estimated_upper"])
    assert hits[now["realized"].notna()].mean() > 0.8


def test_diabetes_table_dle_in_windows():
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
    features = [c for c in data.columns if c != "y"]
    model = LinearRegression().fit(data.loc[:149, features], data.loc[:149, "y"])
    frame = data.assign(prediction=model.predict(data[features]))
    ref, cur = frame.loc[150:299].reset_index(drop=True), frame.loc[300:].reset_index(drop=True)
    out = _run("regression", None, ref, cur, 50)
    now = out[out["period"] == "current"]
    assert set(now["metric"]) == {"rmse", "mae", "r2"}
    rmse = now[now["metric"] == "rmse"]
    assert (
        (rmse["realized"] >= rmse["estimated_lower"])
        & (rmse["realized"] <= rmse["estimated_upper"])
    ).all()
    assert (rmse["upper"].notna() & rmse["lower"].isna()).all()  # a loss alerts upwards only


def test_multiclass_penguins():
    import palmerpenguins

    data = palmerpenguins.load_penguins().dropna().rename(columns={"species": "y"})
    data = data.sample(frac=1, random_state=1).reset_index(drop=True)
    features = ["bill_length_mm", "bill_depth_mm"]
    model = LogisticRegression(max_iter=2000).fit(data.loc[:99, features], data.loc[:99, "y"])
    ref = _scored(model, data.loc[100:219].reset_index(drop=True), features)
    cur = _scored(model, data.loc[220:].reset_index(drop=True), features)
    out = _run("multiclass", list(model.classes_), ref, cur, 40)
    assert out["metric"].iloc[0] == "f1_macro"  # the multiclass headline first
    now = out[out["period"] == "current"]
    for name in ("f1_macro", "accuracy", "roc_auc"):
        rows = now[now["metric"] == name]
        assert rows["estimated"].between(0.5, 1).all()
        assert (rows["estimated"] - rows["realized"]).abs().max() < 0.15


def test_without_scores_nothing_is_estimated_but_realized_still_counts(binary_model):
    rng = np.random.default_rng(9)
    ref = _scored(binary_model, _binary(rng, 2000))
    cur = _scored(binary_model, _binary(rng, 1000)).drop(columns=["proba_0", "proba_1"])
    out = _run("binary", [0, 1], ref, cur, 500)
    now = out[out["period"] == "current"]
    assert now["estimated"].isna().all() and not now["alert_estimated"].any()
    acc = now[now["metric"] == "accuracy"]["realized"]
    assert acc.between(0.6, 0.95).all()


def test_partly_labelled_windows_count_their_labels(binary_model):
    rng = np.random.default_rng(10)
    ref = _scored(binary_model, _binary(rng, 2000))
    cur = _scored(binary_model, _binary(rng, 1000))
    cur["y"] = cur["y"].astype(object).where(np.arange(1000) < 700, None)
    out = _run("binary", [0, 1], ref, cur, 500)
    now = out[(out["period"] == "current") & (out["metric"] == "accuracy")]
    assert now["labelled_rows"].tolist() == [500, 200]
    wide = now["realized_upper"] - now["realized_lower"]
    assert wide.iloc[1] > wide.iloc[0]  # fewer labels, wider band


def test_time_windows_carry_their_bounds(binary_model):
    rng = np.random.default_rng(11)
    ref = _scored(binary_model, _binary(rng, 1000))
    cur = _scored(binary_model, _binary(rng, 900))
    times = pd.Series(pd.date_range("2026-01-01", periods=900, freq="h"))
    cur_w = split(900, parse_spec("1W"), times)
    ref_w = reference_windows(1000, parse_spec("1W"), cur_w)
    out = est.window_performance("binary", [0, 1], ref, cur, ref_w, cur_w, target="y")
    now = out[out["period"] == "current"]
    assert now["start"].iloc[0] == pd.Timestamp("2025-12-29")
    assert (now["end"] > now["start"]).all()


def test_current_frame_joins_outputs_and_labels():
    cur = Current(
        frame=pd.DataFrame({"a": [1.0, 2.0]}),
        source="x",
        pred=np.array(["n", "p"]),
        proba=np.array([[0.8, 0.2], [0.3, 0.7]]),
        y=np.array(["n", None], dtype=object),
    )
    got = est.current_frame(cur, "y", ["n", "p"])
    assert list(got.columns) == ["a", "prediction", "proba_n", "proba_p", "y"]
    assert got["proba_p"].tolist() == [0.2, 0.7] and got["y"].tolist() == ["n", None]
    # the features are the current frame's own columns, not copies (a million rows: 176 MiB)
    assert np.shares_memory(got["a"].to_numpy(), cur.frame["a"].to_numpy())


def test_errors_name_the_column_or_metric(binary_model):
    rng = np.random.default_rng(12)
    ref = _scored(binary_model, _binary(rng, 200))
    with pytest.raises(DataValidationError, match=r"reference: column 'y' is missing"):
        _run("binary", [0, 1], ref.drop(columns="y"), ref, 50)
    with pytest.raises(ParamsError, match=r"\['mape'\] cannot be estimated for binary"):
        _run("binary", [0, 1], ref, ref, 50, metrics=["accuracy", "mape"])
    bad = ref.assign(prediction=ref["prediction"].replace({1: 7}))
    with pytest.raises(DataValidationError, match=r"prediction row \d+ is '7', not one of"):
        _run("binary", [0, 1], ref, bad, 50)
    cur = ref.drop(columns="b").assign(prediction=0.0)
    reg = ref.assign(prediction=0.0, y=ref["a"])
    with pytest.raises(DataValidationError, match=r"features \['b'\] are missing"):
        _run("regression", None, reg, cur, 50)


@pytest.mark.slow
def test_a_million_rows_in_fifty_windows_take_seconds():
    rng = np.random.default_rng(13)
    n, k = 1_000_000, 20
    x = rng.normal(size=(n, k)).astype(np.float32)
    logit = x[:, :3] @ BETA
    proba = 1 / (1 + np.exp(-logit))
    cur = pd.DataFrame(x, columns=[f"f{i}" for i in range(k)])
    cur = cur.assign(prediction=(proba > 0.5).astype(int), proba_0=1 - proba, proba_1=proba)
    ref = cur.iloc[:100_000].assign(y=(rng.random(100_000) < proba[:100_000]).astype(int))
    start = time.perf_counter()
    out = _run("binary", [0, 1], ref, cur, 20_000)
    took = time.perf_counter() - start
    assert (out["period"] == "current").sum() == 50 * len(est.DEFAULT["binary"])
    assert took < 30, took


def test_a_row_with_a_missing_probability_is_left_out_of_its_window_only(binary_model):
    """Squared scores are miscalibrated, so the isotonic map is applied to every current row."""
    rng = np.random.default_rng(12)

    def squashed(frame):
        p1 = frame["proba_1"] ** 2
        return frame.assign(proba_1=p1, proba_0=1 - p1, prediction=(p1 >= 0.5).astype(int))

    ref = squashed(_scored(binary_model, _binary(rng, 3000)))
    cur = squashed(_scored(binary_model, _binary(rng, 1000)))
    assert calib.fit_calibrator(ref["y"].to_numpy(), ref[["proba_0", "proba_1"]].to_numpy()).maps[1]
    whole = _run("binary", [0, 1], ref, cur, 500)
    cur.loc[10, ["proba_0", "proba_1"]] = np.nan
    holed = _run("binary", [0, 1], ref, cur, 500)
    now, was = (t[t["period"] == "current"].reset_index(drop=True) for t in (holed, whole))
    assert now["estimated"].notna().all()
    first = now["window"] == now["window"].iloc[0]
    assert (now.loc[first, "estimated"] - was.loc[first, "estimated"]).abs().max() < 0.01
    pd.testing.assert_series_equal(now.loc[~first, "estimated"], was.loc[~first, "estimated"])


def _diabetes_runs(seeds: int):
    """scikit-learn's diabetes, nothing shifted: a ridge model on 150 rows, an 88-row labelled
    reference (a test split's size), 300 labelled current rows in 5 windows; per split, the
    share of current windows whose realized value left the band."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True, as_frame=True)
    shares = []
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(x))
        model = Ridge().fit(x.iloc[order[:150]], y.iloc[order[:150]])

        ref, cur = (
            x.iloc[rows]
            .reset_index(drop=True)
            .assign(prediction=model.predict(x.iloc[rows]), target=y.iloc[rows].to_numpy())
            for rows in (order[150:238], order[238:538])
        )
        spec = parse_spec("5 windows")
        cur_w = split(len(cur), spec)
        ref_w = reference_windows(len(ref), spec, cur_w)
        out = est.window_performance("regression", None, ref, cur, ref_w, cur_w, target="target")
        current = out[out["period"] == "current"]
        shares.append(current.groupby("window")["alert_realized"].any().mean())
    return float(np.mean(shares))


def test_a_small_reference_learns_its_band_from_drawn_windows_too():
    """The band of 2 reference windows (88 rows against windows of 60) put 6 % of unshifted
    current windows outside it (10 splits); topped up to 20 values drawn from the labelled
    reference rows and widened for its centre's error, none."""
    share = _diabetes_runs(10)
    print(f"realized alerts per window, nothing shifted: {share:.3f}")
    assert share < 0.03


def test_the_band_is_never_narrower_than_the_estimates_spread():
    """scikit-learn's breast cancer, a near-perfect logistic model, 88 labelled reference rows
    holding one or two errors: every drawn window realized about 1.0, so the realized band was
    too narrow and 22 % of unshifted labelled windows fell below it (20 splits). Its sd is now
    at least the estimates' over the same windows (the realized value varies around them)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    shares = []
    for seed in range(20):
        order = np.random.default_rng(seed).permutation(len(x))
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1))
        model.fit(x.iloc[order[:150]], y.iloc[order[:150]])
        ref, cur = (
            x.iloc[rows]
            .reset_index(drop=True)
            .assign(
                prediction=model.predict(x.iloc[rows]),
                proba_0=model.predict_proba(x.iloc[rows])[:, 0],
                proba_1=model.predict_proba(x.iloc[rows])[:, 1],
                target=y.iloc[rows].to_numpy(),
            )
            for rows in (order[150:238], order[238:538])
        )
        spec = parse_spec("5 windows")
        cur_w = split(len(cur), spec)
        out = est.window_performance(
            "binary", [0, 1], ref, cur, reference_windows(len(ref), spec, cur_w), cur_w,
            target="target",
        )  # fmt: skip
        current = out[out["period"] == "current"]
        shares.append(current.groupby("window")["alert_realized"].any().mean())
    print(f"realized alerts per window, nothing shifted: {np.mean(shares):.3f}")
    assert np.mean(shares) < 0.10


def _model_outputs(model, x: pd.DataFrame, y: pd.Series, rows: np.ndarray) -> pd.DataFrame:
    """Rows ``rows`` with the model's prediction and probabilities and the truth."""
    proba = model.predict_proba(x.iloc[rows])
    frame = x.iloc[rows].reset_index(drop=True)
    frame = frame.assign(prediction=model.predict(x.iloc[rows]), target=y.iloc[rows].to_numpy())
    return frame.assign(**{f"proba_{c}": proba[:, j] for j, c in enumerate(model.classes_)})


def test_the_estimate_is_judged_where_the_estimates_sat_on_the_reference():
    """scikit-learn's wine, a logistic model fitted on 60 rows, an 88-row reference (too few to
    calibrate its scores), nothing shifted, 20 splits: judged against the realized band, the
    estimate alerted on 29 % of current windows; against that band moved by the estimates'
    offset on the reference, 8 %. Realized alerts are untouched."""
    from sklearn.datasets import load_wine
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_wine(return_X_y=True, as_frame=True)
    estimated, realized, offsets = [], [], []
    for seed in range(20):
        order = np.random.default_rng(seed).permutation(len(x))
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1))
        model.fit(x.iloc[order[:60]], y.iloc[order[:60]])

        ref, cur = (_model_outputs(model, x, y, rows) for rows in (order[60:148], order[148:]))
        spec = parse_spec("5 windows")
        cur_w = split(len(cur), spec)
        out = est.window_performance(
            "multiclass", [0, 1, 2], ref, cur, reference_windows(len(ref), spec, cur_w), cur_w,
            target="target",
        )  # fmt: skip
        current = out[out["period"] == "current"]
        estimated.append(current.groupby("window")["alert_estimated"].any().mean())
        realized.append(current.groupby("window")["alert_realized"].any().mean())
        offsets.append((out["lower_estimated"] - out["lower"]).abs().max())
    print(f"alerts per window, nothing shifted: estimated {np.mean(estimated):.3f}, "
          f"realized {np.mean(realized):.3f}")  # fmt: skip
    assert np.mean(estimated) < 0.15
    assert np.mean(realized) < 0.10
    assert max(offsets) > 0.02  # the estimate's band did move


def test_the_estimate_band_is_the_realized_band_moved_by_the_offset():
    frame = pd.DataFrame(
        {
            "period": ["reference"] * 4 + ["current"] * 2,
            "metric": "accuracy",
            "estimated": [0.80, 0.82, 0.81, 0.79, 0.70, 0.78],
            "realized": [0.90, 0.92, 0.91, 0.89, np.nan, np.nan],
        }
    )
    for c in est.COLUMNS:
        frame[c] = frame.get(c, np.nan)
    out = est._with_bands(frame, ("accuracy",), sigmas=3.0)
    sd = max(np.std([0.90, 0.92, 0.91, 0.89]), np.std([0.80, 0.82, 0.81, 0.79]))
    assert out["lower"].iloc[0] == pytest.approx(0.905 - 3 * sd)
    assert out["lower_estimated"].iloc[0] == pytest.approx(0.805 - 3 * sd)
    # 0.78 is within the estimates' band though far below the realized one; 0.70 is not
    assert out.loc[out["period"] == "current", "alert_estimated"].tolist() == [True, False]


def test_the_bootstraps_positions_are_uniform_draws_in_order():
    from lib.monitoring.windows import sorted_draw

    rng = np.random.default_rng(0)
    draws = np.concatenate([sorted_draw(rng, 10, 1000) for _ in range(200)])
    assert draws.min() == 0 and draws.max() == 9
    counts = np.bincount(draws, minlength=10)
    # 200,000 draws over 10 positions: each count within 5 sd of 20,000 (with replacement)
    assert np.all(np.abs(counts - 20_000) < 5 * np.sqrt(20_000 * 0.9))
    one = sorted_draw(rng, 1_000_000, 20_000)
    assert (np.diff(one) >= 0).all() and one[-1] < 1_000_000
    # repeats as often as drawing with replacement gives (about size^2 / 2n pairs)
    assert 150 < 20_000 - len(np.unique(one)) < 250
