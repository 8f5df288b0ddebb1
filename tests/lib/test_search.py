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
