from __future__ import annotations

import numpy as np
import pytest

from lib.core.param_sections import TrainParams
from lib.core.params import load_params
from lib.data.ingest import load_processed
from lib.model.metrics import metrics_for
from lib.model.models import model_spec
from lib.model.search import compute_backend, curve, search_family
from tests.conftest import tiny_training_overrides


@pytest.fixture(scope="module")
def data(trained_root):
    return load_processed(load_params(overrides=tiny_training_overrides(trained_root)))


def run(data, family="logistic", task="binary", **train):
    p = TrainParams(cv_folds=3, **train)
    spec = model_spec(family, task, data.preprocessor, p, 3, len(data.splits["train"]))
    metrics = metrics_for(task, p.primary_metric, p.secondary_metrics)
    return search_family(spec, data.xy("train"), data.xy("validation"), task, p, metrics, 3)


def test_grid_search_scores_every_metric_and_refits_the_best(data):
    result = run(data, grids={"logistic": {"C": [0.01, 1.0]}})
    assert result.candidates == 2
    assert set(result.cv) == {"roc_auc", "accuracy", "f1_macro", "average_precision", "log_loss"}
    assert len(result.fold_scores) == 3
    assert np.mean(result.fold_scores) == pytest.approx(result.cv["roc_auc"][0])
    assert result.cv["log_loss"][0] > 0  # losses are reported positive
    assert 0.5 < result.validation["roc_auc"] <= 1.0
    assert result.best_params["C"] in (0.01, 1.0)
    assert result.best_params["C"] == result.estimator.named_steps["model"].C
    assert set(result.importances.index) == set(data.schema.names())


def test_random_and_halving_search(data):
    random = run(data, search="random", n_iter=2, grids={"logistic": {"C": [0.01, 0.1, 1.0]}})
    assert random.candidates == 2
    halving = run(
        data,
        family="hist_gradient_boosting",
        search="halving",
        grids={"hist_gradient_boosting": {"max_leaf_nodes": [3, 7, 15]}},
    )
    assert set(halving.cv) == {"roc_auc"}  # one scorer under successive halving
    assert "log_loss" in halving.validation


def test_same_seed_same_scores(data):
    a = run(
        data,
        family="hist_gradient_boosting",
        grids={"hist_gradient_boosting": {"max_leaf_nodes": [7]}},
    )
    b = run(
        data,
        family="hist_gradient_boosting",
        grids={"hist_gradient_boosting": {"max_leaf_nodes": [7]}},
    )
    assert a.cv == b.cv and a.validation == b.validation


def test_learning_curve_has_train_and_cv_scores(data):
    result = run(data)
    lc = curve(
        result.estimator,
        *data.xy("train"),
        "binary",
        TrainParams(cv_folds=3),
        metrics_for("binary", "auto", None)[0],
        3,
    )
    assert list(lc.columns) == ["train_rows", "train_mean", "train_std", "cv_mean", "cv_std"]
    assert lc["train_rows"].is_monotonic_increasing and len(lc) == 4


@pytest.mark.slow
def test_dask_backend_gives_the_local_results(data):
    grids = {"random_forest": {"n_estimators": [20], "max_depth": [3, None]}}
    local = run(data, family="random_forest", grids=grids)
    with compute_backend(TrainParams(backend="dask", dask_workers=2)) as backend:
        assert backend == "dask (LocalCluster with 2 workers)"
        remote = run(data, family="random_forest", grids=grids, backend="dask")
    assert remote.cv == local.cv
    assert remote.best_params == local.best_params
    X, _ = data.xy("test")
    assert np.array_equal(remote.estimator.predict_proba(X), local.estimator.predict_proba(X))


def _wine(rare: int):
    """scikit-learn's wine table with only ``rare`` rows of class 2 left."""
    import pandas as pd
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    keep = pd.concat([wine[wine["target"] != 2], wine[wine["target"] == 2].head(rare)])
    return keep.drop(columns="target").reset_index(drop=True), keep["target"].reset_index(drop=True)


def test_cv_plan_reduces_folds_to_the_rarest_class_and_says_so():
    from lib.model.search import cv_plan

    _, y = _wine(3)
    cv, note = cv_plan("multiclass", y, 5, seed=0)
    assert cv.get_n_splits() == 3
    assert note == "3-fold CV instead of train.cv_folds=5: class 2 has only 3 training rows"
    _, y = _wine(48)
    assert cv_plan("multiclass", y, 5, seed=0)[1] == ""


def test_cv_plan_keeps_a_single_row_class_in_every_training_fold():
    from lib.model.search import cv_plan

    _, y = _wine(1)
    single = int(np.flatnonzero(y.to_numpy() == 2)[0])
    cv, note = cv_plan("multiclass", y, 5, seed=0)
    assert len(cv) == 5
    assert note.startswith("5-fold CV: class(es) 2 have a single training row")
    tested = np.concatenate([te for _, te in cv])
    assert sorted(tested.tolist()) == sorted(set(range(len(y))) - {single})
    assert all(single in tr and single not in te for tr, te in cv)


def test_cv_plan_refuses_when_cross_validation_is_impossible():
    import pandas as pd

    from lib.core.errors import DataValidationError
    from lib.model.search import cv_plan

    y = pd.Series(["a"] * 10 + ["b", "c"])
    with pytest.raises(DataValidationError, match=r"only 1 class\(es\) of the target have 2 or"):
        cv_plan("multiclass", y, 5, seed=0)


@pytest.mark.parametrize("rare", [1, 2])
def test_search_with_a_rare_class_scores_with_the_full_class_list(rare):
    from sklearn import metrics as skm

    from lib.core.param_sections import PreprocessingParams
    from lib.data.preprocess import build_preprocessor
    from lib.data.schema import Schema

    X, y = _wine(rare + 10)
    train = (X.iloc[: len(X) - 10], y.iloc[: len(X) - 10])
    rare_rows = train[1] == 2
    assert rare_rows.sum() == rare
    validation = (X.tail(30), y.tail(30))  # classes 1 and 2 only, 0 absent
    schema = Schema.model_validate(
        {
            "target": "target",
            "task": "multiclass",
            "classes": [0, 1, 2],
            "features": [{"name": c, "kind": "numeric"} for c in X.columns],
        }
    )
    pre = build_preprocessor(schema, PreprocessingParams())
    p = TrainParams(cv_folds=5, grids={"logistic": {"C": [1.0]}})
    spec = model_spec("logistic", "multiclass", pre, p, 0, len(train[0]))
    metrics = metrics_for("multiclass", "auto", None)
    result = search_family(spec, train, validation, "multiclass", p, metrics, 0)
    expected = {
        1: "5-fold CV: class(es) 2 have a single training row, kept in every training fold and "
        "not scored in cross-validation",
        2: "2-fold CV instead of train.cv_folds=5: class 2 has only 2 training rows",
    }
    assert result.note == expected[rare]
    assert np.isfinite(result.cv["log_loss"][0]) and np.isfinite(result.cv["roc_auc"][0])
    proba = result.estimator.predict_proba(validation[0])
    assert result.validation["log_loss"] == pytest.approx(
        skm.log_loss(validation[1], proba, labels=[0, 1, 2])
    )
