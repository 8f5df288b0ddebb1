from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from lib.model.scoring import (
    best_threshold,
    bootstrap,
    classification_metrics,
    regression_metrics,
    segment_table,
    worst_errors,
)

RNG = np.random.default_rng(0)


def binary_fixture(n=400):
    y = RNG.integers(0, 2, n)
    p1 = np.clip(0.35 * y + RNG.uniform(0, 0.65, n), 0, 1)
    return y, np.column_stack([1 - p1, p1])


def test_binary_metrics_match_scikit_learn():
    y, proba = binary_fixture()
    got = classification_metrics(y, proba, [0, 1], threshold=0.4)
    pred = (proba[:, 1] >= 0.4).astype(int)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["precision_macro"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert got["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert got["f1[1]"] == pytest.approx(skm.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y, proba[:, 1]))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, proba[:, 1]))


def test_multiclass_metrics_match_scikit_learn():
    classes = ["a", "b", "c"]
    y = np.array(RNG.choice(classes, 300), dtype=object)
    raw = RNG.uniform(0, 1, (300, 3)) + 0.8 * (y[:, None] == np.array(classes)[None, :])
    proba = raw / raw.sum(axis=1, keepdims=True)
    got = classification_metrics(y, proba, classes)
    pred = np.array(classes, dtype=object)[proba.argmax(axis=1)]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes)
    )
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=classes))
    onehot = (y[:, None] == np.array(classes)[None, :]).astype(float)
    assert got["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    assert got["pr_auc"] == pytest.approx(
        skm.average_precision_score(onehot, proba, average="macro")
    )


def test_regression_metrics_match_scikit_learn():
    y = RNG.normal(10, 3, 200)
    pred = y + RNG.normal(0, 1, 200)
    got = regression_metrics(y, pred)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    y, proba = binary_fixture()
    fn = lambda a, b: {"roc_auc": skm.roc_auc_score(a, b[:, 1])}  # noqa: E731
    low, high = bootstrap(fn, [y, proba], 200, 0.95, seed=1)
    point = fn(y, proba)["roc_auc"]
    assert low["roc_auc"] < point < high["roc_auc"]
    assert high["roc_auc"] - low["roc_auc"] < 0.2
    assert bootstrap(fn, [y, proba], 200, 0.95, seed=1) == (low, high)
    narrow = bootstrap(fn, [y, proba], 200, 0.5, seed=1)
    assert narrow[0]["roc_auc"] > low["roc_auc"] and narrow[1]["roc_auc"] < high["roc_auc"]


def test_best_threshold_maximises_f1():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.55, 0.6, 0.7, 0.9])
    assert best_threshold(y, p, 1) == pytest.approx(0.56)


def test_segments_and_worst_errors():
    frame = pd.DataFrame({"plan": ["a"] * 20 + ["b"] * 20 + [None] * 2})
    y = np.array([0, 1] * 21)
    proba = np.column_stack([1 - y * 0.8 - 0.1, y * 0.8 + 0.1])
    proba[:20] = proba[:20][:, ::-1]  # segment a is all wrong
    fn = lambda a, b: classification_metrics(a, b, [0, 1])  # noqa: E731
    table = segment_table(frame, ["plan"], fn, [y, proba], ["accuracy"]).set_index("value")
    assert table.loc["a", "accuracy"] == 0.0 and table.loc["b", "accuracy"] == 1.0
    assert np.isnan(table.loc["(missing)", "accuracy"])  # under 10 rows
    assert table.loc["a", "rows"] == 20
    worst = worst_errors(frame, "binary", y, proba.argmax(axis=1), proba, [0, 1], 5)
    assert len(worst) == 5 and (worst.index < 20).all()
    assert list(worst.columns[:3]) == ["actual", "predicted", "p(actual)"]


def _sklearn_classification(y, proba, classes, threshold=None):
    """The reference: every classification metric as scikit-learn computes it."""
    from lib.model.scoring import predict_labels

    labels = list(classes)
    pred = predict_labels(proba, labels, threshold)
    onehot = (np.asarray(y, dtype=object)[:, None] == np.asarray(labels, dtype=object)).astype(
        float
    )
    p, r, f, _ = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    in_truth = set(np.asarray(y, dtype=object).tolist())
    seen = [c for c in labels if c in in_truth or c in set(pred.tolist())]
    macro = skm.precision_recall_fscore_support(
        y, pred, labels=seen, average="macro", zero_division=0
    )
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision_macro": macro[0],
        "recall_macro": macro[1],
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "f1_macro": macro[2],
        "log_loss": skm.log_loss(y, proba, labels=labels),
    }
    if len(labels) == 2:
        out["roc_auc"] = skm.roc_auc_score(onehot[:, 1], proba[:, 1])
        out["pr_auc"] = skm.average_precision_score(onehot[:, 1], proba[:, 1])
        out["brier"] = skm.brier_score_loss(onehot[:, 1], proba[:, 1])
    else:
        present = onehot.sum(axis=0) > 0
        out["roc_auc"] = skm.roc_auc_score(onehot[:, present], proba[:, present], average="macro")
        out["pr_auc"] = skm.average_precision_score(onehot[:, present], proba[:, present])
        out["brier"] = np.mean(np.sum((proba - onehot) ** 2, axis=1))
    for i, label in enumerate(labels):
        out[f"precision[{label}]"] = p[i] if label in seen else np.nan
        out[f"recall[{label}]"] = r[i] if label in in_truth else np.nan
        out[f"f1[{label}]"] = f[i] if label in seen else np.nan
    return out


@pytest.mark.parametrize("seed", range(12))
def test_numpy_metrics_equal_scikit_learn_on_ties_missing_classes_and_resamples(seed):
    rng = np.random.default_rng(seed)
    k = 2 if seed % 2 else 3 + seed % 3
    classes = list(range(k)) if seed % 4 < 2 else [f"class {c}" for c in "abcde"[:k]]
    n = int(rng.integers(30, 400))
    weights = rng.dirichlet(np.ones(k))
    weights[-1] = 0 if k > 2 and seed % 3 == 0 else weights[-1]  # a class never seen
    y = np.array(classes, dtype=object)[rng.choice(k, n, p=weights / weights.sum())]
    raw = rng.uniform(0, 1, (n, k)) + 0.7 * (y[:, None] == np.array(classes, dtype=object))
    proba = np.round(raw / raw.sum(axis=1, keepdims=True), 1 + seed % 2)  # ties
    proba = proba / proba.sum(axis=1, keepdims=True)
    threshold = 0.4 if k == 2 else None
    y = y.astype(int) if isinstance(classes[0], int) else y  # as read from the data
    got = classification_metrics(y, proba, classes, threshold)
    want = _sklearn_classification(y, proba, classes, threshold)
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12, nan_ok=True), key
    # the bootstrap gives the same intervals with either (resamples lacking a class included)
    fn = lambda yy, pp: classification_metrics(yy, pp, classes, threshold)  # noqa: E731
    ref = lambda yy, pp: _sklearn_classification(yy, pp, classes, threshold)  # noqa: E731
    small = (y[:25], proba[:25])
    low, high = bootstrap(fn, small, 30, 0.9, seed)
    ref_low, ref_high = bootstrap(ref, small, 30, 0.9, seed)
    assert low == pytest.approx(ref_low, rel=1e-9, abs=1e-12, nan_ok=True)
    assert high == pytest.approx(ref_high, rel=1e-9, abs=1e-12, nan_ok=True)


def test_one_class_only_gives_nan_auc_like_scikit_learn():
    y = np.zeros(20, dtype=int)
    proba = np.column_stack([np.full(20, 0.7), np.full(20, 0.3)])
    got = classification_metrics(y, proba, [0, 1])
    with pytest.warns(UserWarning):  # scikit-learn: undefined, NaN
        assert np.isnan(skm.roc_auc_score(y, proba[:, 1])) and np.isnan(got["roc_auc"])
    assert got["accuracy"] == 1.0 and got["pr_auc"] == 0.0
    with pytest.raises(ValueError, match="outside the classes"):
        classification_metrics(np.full(20, 5), proba, [0, 1])


@pytest.mark.parametrize("truth", ["random", "constant", "constant-exact"])
def test_numpy_regression_metrics_equal_scikit_learn(truth):
    rng = np.random.default_rng(1)
    y = rng.normal(5, 2, 150) if truth == "random" else np.full(150, 3.0)
    pred = y.copy() if truth == "constant-exact" else y + rng.normal(0, 1, 150)
    got = regression_metrics(y, pred)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)), rel=1e-12)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred), rel=1e-12)


def _absent_fixture(n=240):
    """Three classes known to the model, the last one absent from the rows scored."""
    classes = ["a", "b", "c"]
    y = np.array(RNG.choice(classes[:2], n), dtype=object)
    raw = RNG.uniform(0, 1, (n, 3)) + 0.8 * (y[:, None] == np.array(classes)[None, :])
    raw[:5, 2] += 3.0  # a few rows predicted as the absent class
    return classes, y, raw / raw.sum(axis=1, keepdims=True)


def test_absent_class_metrics_equal_scikit_learn_with_the_full_class_list():
    classes, y, proba = _absent_fixture()
    got = classification_metrics(y, proba, classes)
    pred = np.array(classes, dtype=object)[proba.argmax(axis=1)]
    assert "c" in set(pred) and "c" not in set(y)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=classes))
    # F1 and precision: over the classes in truth or predictions (scikit-learn's default)
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    assert got["precision_macro"] == pytest.approx(
        skm.precision_score(y, pred, average="macro", zero_division=0)
    )
    # ROC and PR AUC: one-vs-rest over the classes present in the truth
    present = [0, 1]
    truth = y[:, None] == np.array(classes)[None, :]
    assert got["roc_auc"] == pytest.approx(
        np.mean([skm.roc_auc_score(truth[:, j], proba[:, j]) for j in present])
    )
    assert got["pr_auc"] == pytest.approx(
        np.mean([skm.average_precision_score(truth[:, j], proba[:, j]) for j in present])
    )
    assert np.isnan(got["recall[c]"])
    assert got["precision[c]"] == 0.0  # predicted, never right


def test_absent_class_never_predicted_does_not_drag_the_macro_f1_down():
    classes = ["a", "b", "c"]
    y = np.array(["a", "b"] * 50, dtype=object)
    proba = np.where(y[:, None] == np.array(classes)[None, :], 0.7, 0.15)
    got = classification_metrics(y, proba, classes)
    assert got["f1_macro"] == 1.0  # not 2/3: the absent class is not a zero
    assert np.isnan(got["f1[c]"]) and np.isnan(got["precision[c]"])


def test_averaging_note_names_the_absent_class():
    from lib.model.scoring import averaging_note

    classes, y, _ = _absent_fixture()
    assert averaging_note(y, classes).startswith(
        "Macro averages are over the 2 of 3 classes present in the test split: 'c' has no test rows"
    )
    assert averaging_note(y, classes[:2]) == (
        "Macro averages are over all 2 classes (each has test rows)."
    )
