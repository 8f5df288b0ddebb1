"""Monitoring metrics per window, metric drops and the Page-Hinkley concept-drift detector."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from lib.core.errors import ParamsError
from lib.model import scoring
from lib.monitoring import performance


def binary(n: int, seed: int, noise: float = 0.2) -> performance.Scored:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, noise, n), 0.01, 0.99)
    proba = np.column_stack([1 - p1, p1])
    return performance.Scored(y, (p1 >= 0.5).astype(int), proba, [0, 1])


def test_lean_metrics_equal_scikit_learn():
    s = binary(500, 0)
    got = performance.metric_table("binary", s, 0, 0.95, 0)
    assert got["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(s.y, s.proba[:, 1]))
    assert got["accuracy"]["value"] == pytest.approx(skm.accuracy_score(s.y, s.pred))
    assert got["f1_macro"]["value"] == pytest.approx(skm.f1_score(s.y, s.pred, average="macro"))
    assert got["log_loss"]["value"] == pytest.approx(skm.log_loss(s.y, s.proba))
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    pred = y + rng.normal(0, 0.5, 300)
    reg = performance.metric_table(
        "regression", performance.Scored(y, pred, None, None), 0, 0.95, 0
    )
    assert reg["rmse"]["value"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert reg["r2"]["value"] == pytest.approx(skm.r2_score(y, pred))


def test_windows_cover_every_row_in_order_with_intervals_around_the_value():
    s = binary(1000, 0)
    table = performance.windows("binary", s, None, 5, 100, 0.9, 0)
    auc = table[table["metric"] == "roc_auc"]
    assert auc["window"].tolist() == [1, 2, 3, 4, 5] and auc["rows"].sum() == 1000
    assert (auc["ci_low"] <= auc["value"]).all() and (auc["value"] <= auc["ci_high"]).all()


def test_metric_drops_know_losses_and_reject_unmonitored_metrics():
    ref = {"roc_auc": {"value": 0.80}, "log_loss": {"value": 0.40}}
    cur = {"roc_auc": {"value": 0.72}, "log_loss": {"value": 0.55}}
    drops = performance.metric_drops(ref, cur, {"roc_auc": 0.05, "log_loss": 0.1}, "binary")
    assert [d["metric"] for d in drops] == ["log_loss", "roc_auc"]
    assert performance.metric_drops(ref, cur, {"roc_auc": 0.1}, "binary") == []
    with pytest.raises(ParamsError, match=r"metric_drop: 'rmse' is not monitored for binary"):
        performance.metric_drops(ref, cur, {"rmse": 0.1}, "binary")


def test_page_hinkley_catches_a_rise_in_error_rate_and_rarely_cries_wolf():
    detector = performance.PageHinkley()
    mean, std = 0.2, np.sqrt(0.2 * 0.8)
    false_alarms = caught = 0
    delays = []
    for seed in range(50):
        rng = np.random.default_rng(seed)
        stable = (rng.random(5000) < 0.2).astype(float)
        false_alarms += detector.detect(stable, mean, std) is not None
        changed = np.concatenate([stable[:2000], (rng.random(3000) < 0.35).astype(float)])
        alarm = detector.detect(changed, mean, std)
        if alarm is not None and alarm >= 2000:
            caught += 1
            delays.append(alarm - 2000)
    assert false_alarms <= 2
    assert caught >= 48
    assert np.median(delays) < 600


def test_lean_multiclass_metrics_equal_scikit_learn_with_an_absent_class():
    rng = np.random.default_rng(3)
    classes = ["a", "b", "c", "d"]  # "d" never occurs
    y = rng.choice(classes[:3], 400)
    raw = rng.random((400, 4)) + (y[:, None] == np.array(classes)[None, :]) * 0.8
    proba = raw / raw.sum(axis=1, keepdims=True)
    pred = np.array(classes)[proba.argmax(axis=1)]
    got = performance.lean_metrics("multiclass", classes)(y, pred, proba)
    onehot = (y[:, None] == np.array(classes)[None, :]).astype(float)
    present = onehot.sum(axis=0) > 0
    assert got["f1_macro"] == pytest.approx(
        skm.f1_score(y, pred, labels=classes, average="macro", zero_division=0)
    )
    assert got["roc_auc"] == pytest.approx(
        skm.roc_auc_score(onehot[:, present], proba[:, present], average="macro")
    )
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=classes))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))


def test_roc_auc_handles_ties_like_scikit_learn():
    y = np.array([0, 1, 1, 0, 1, 0, 1])
    score = np.array([0.2, 0.5, 0.5, 0.5, 0.9, 0.1, 0.2])
    assert scoring.roc_auc(y == 1, score) == pytest.approx(skm.roc_auc_score(y, score))


def test_the_headline_metric_comes_first():
    table = performance.metric_table("binary", binary(200, 0), 0, 0.95, 0)
    assert list(table) == ["roc_auc", "accuracy", "f1_macro", "log_loss"]
