from __future__ import annotations

import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.svm import SVR

from lib.core.errors import ParamsError
from lib.core.param_sections import FAMILIES, PreprocessingParams, TrainParams
from lib.data.preprocess import build_preprocessor
from lib.data.schema import ColumnSchema, Schema
from lib.model.metrics import metrics_for
from lib.model.models import model_spec

SCHEMA = Schema(
    target="y",
    task="binary",
    features=[ColumnSchema(name="x", kind="numeric"), ColumnSchema(name="c", kind="categorical")],
)
PRE = build_preprocessor(SCHEMA, PreprocessingParams())


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_builds_for_every_task(family, task):
    spec = model_spec(family, task, PRE, TrainParams(), 7, rows=500)
    assert [name for name, _ in spec.pipeline.steps] == ["pre", "model"]
    assert spec.pipeline.named_steps["pre"] is not PRE  # cloned, never shared
    params = spec.pipeline.get_params()
    assert set(spec.grid) <= set(params)
    for key in params:
        if key.endswith("random_state") and params[key] is not None:
            assert params[key] == 7


def test_class_weights_and_regression_variants():
    hgb = model_spec("hist_gradient_boosting", "binary", PRE, TrainParams(), 1, 500).pipeline
    assert (
        isinstance(hgb[-1], HistGradientBoostingClassifier) and hgb[-1].class_weight == "balanced"
    )
    none = model_spec("logistic", "binary", PRE, TrainParams(class_weight="none"), 1, 500).pipeline
    assert isinstance(none[-1], LogisticRegression) and none[-1].class_weight is None
    assert isinstance(
        model_spec("random_forest", "regression", PRE, TrainParams(), 1, 500).pipeline[-1],
        RandomForestRegressor,
    )
    ridge = model_spec(
        "logistic", "regression", PRE, TrainParams(grids={"logistic": {"C": [0.5, 2.0]}}), 1, 500
    )
    assert isinstance(ridge.pipeline[-1], Ridge)
    assert ridge.grid == {"model__alpha": [2.0, 0.5]}


def test_svm_switches_to_kernel_approximation_above_the_row_limit():
    p = TrainParams(svm_max_rows=1000, svm_components=50)
    small = model_spec("svm", "binary", PRE, p, 1, rows=1000)
    assert isinstance(small.pipeline[-1], CalibratedClassifierCV) and "exact" in small.note
    big = model_spec("svm", "binary", PRE, p, 1, rows=1001)
    assert isinstance(big.pipeline[-1], Pipeline)
    assert "1,001 training rows > train.svm_max_rows (1,000): Nystroem" in big.note
    assert set(big.grid) == {"model__svm__estimator__C"}
    assert isinstance(model_spec("svm", "regression", PRE, p, 1, rows=500).pipeline[-1], SVR)


def test_unknown_grid_parameter_names_the_key():
    p = TrainParams(grids={"random_forest": {"n_trees": [10]}})
    with pytest.raises(
        ParamsError,
        match=r"train.grids.random_forest.n_trees: not a parameter of RandomForestClassifier",
    ):
        model_spec("random_forest", "binary", PRE, p, 1, 500)


def test_metric_defaults_and_errors():
    primary, others = metrics_for("binary", "auto", None)
    assert primary.name == "roc_auc" and "log_loss" in [m.name for m in others]
    assert metrics_for("multiclass", "auto", None)[0].name == "f1_macro"
    rmse = metrics_for("regression", "auto", None)[0]
    assert (rmse.name, rmse.higher_is_better, rmse.from_score(-2.5)) == ("rmse", False, 2.5)
    with pytest.raises(ParamsError, match="train.primary_metric: 'rmse' is not a binary metric"):
        metrics_for("binary", "rmse", None)
    with pytest.raises(
        ParamsError, match="train.secondary_metrics: 'roc_auc' is not a regression metric"
    ):
        metrics_for("regression", "auto", ["roc_auc"])


def test_an_unknown_family_is_named_not_trained_as_an_svm():
    from lib.core.params import load_params
    from lib.model.models import _estimator

    with pytest.raises(ValueError, match="unknown model family 'bogus'; choose from random_forest"):
        _estimator("bogus", "binary", load_params().train, 0, 10)  # type: ignore[arg-type]


def _cancer():
    """scikit-learn's breast-cancer table: 569 rows, 30 numeric columns, a binary target."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    X, y = frame.drop(columns="target"), frame["target"]
    schema = Schema(
        target="target",
        task="binary",
        classes=[0, 1],
        features=[ColumnSchema(name=c, kind="numeric") for c in X.columns],
    )
    return X, y, build_preprocessor(schema, PreprocessingParams())


def test_time_budget_switches_the_exact_svm_and_says_why():
    from lib.model.budget import plan_family

    X, y, pre = _cancer()
    p = TrainParams(cv_folds=3, family_time_budget=0.01)
    spec = model_spec("svm", "binary", pre, p, 0, len(X))
    assert isinstance(spec.pipeline.named_steps["model"], CalibratedClassifierCV)  # exact
    plan = plan_family(spec, (X, y), "binary", p, 0, pre, probe_rows=100)
    model = plan.spec.pipeline.named_steps["model"]
    assert isinstance(model, Pipeline) and [n for n, _ in model.steps] == ["kernel", "svm"]
    assert plan.note.startswith("estimated ")
    assert "s for the exact kernel search > train.family_time_budget 0.01 s: Nystroem" in plan.note
    assert plan.spec.note.startswith(plan.note)
    # still over a budget this small: the grid is searched on a row sample (at least 1,000 rows,
    # so here every row: the note does not claim a sample that was not taken)
    assert plan.search_rows is None and "sample" not in plan.note


def _big_cancer():
    X, y, pre = _cancer()
    return (pd.concat([X] * 6, ignore_index=True), pd.concat([y] * 6, ignore_index=True)), pre


def test_time_budget_samples_the_search_of_a_family_with_no_scalable_variant():
    from lib.model.budget import estimate_seconds, plan_family

    big, pre = _big_cancer()
    p = TrainParams(cv_folds=3, family_time_budget=0.0001)
    spec = model_spec("logistic", "binary", pre, p, 0, len(big[0]))
    assert estimate_seconds(spec, big, "binary", p, 0, probe_rows=200) > 0.0001
    plan = plan_family(spec, big, "binary", p, 0, pre, probe_rows=200)
    assert plan.search_rows == 1000  # the floor: the budget asks for fewer
    assert plan.note == (
        f"estimated {plan.note.split()[1]} s to search on 3,414 rows > train.family_time_budget "
        "0.0001 s: grid searched on a stratified sample of 1,000 rows, the best configuration "
        "refitted on all 3,414"
    )
    roomy_p = TrainParams(cv_folds=3, family_time_budget=10_000)
    roomy = plan_family(spec, big, "binary", roomy_p, 0, pre, probe_rows=200)
    assert roomy.search_rows is None and roomy.note == "" and roomy.spec is spec
    assert 0 < roomy.estimate_seconds < 10_000


def test_time_budget_grows_forest_trees_on_part_of_the_rows():
    from lib.model.budget import estimate_seconds, plan_family

    big, pre = _big_cancer()
    grids = {"random_forest": {"max_depth": [4]}}
    spec = model_spec("random_forest", "binary", pre, TrainParams(grids=grids), 0, len(big[0]))
    assert spec.pipeline.named_steps["model"].max_samples is None
    # a budget a tenth of this machine's own estimate (a fixed one passed on a slow machine and
    # failed on a fast one, where the whole search fit in it); the least of three estimates, as
    # a busy moment inflates one (once the plan's own estimate came in under a tenth of it)
    probe = TrainParams(cv_folds=3, grids=grids)
    need = min(estimate_seconds(spec, big, "binary", probe, 0, probe_rows=200) for _ in range(3))
    p = TrainParams(cv_folds=3, family_time_budget=need / 10, grids=grids)
    plan = plan_family(spec, big, "binary", p, 0, pre, probe_rows=200)
    share = plan.spec.pipeline.named_steps["model"].max_samples
    assert 0.05 <= share < 1.0
    assert f"each tree grown on a bootstrap sample of {share:.0%} of the rows (max_samples)" in (
        plan.note
    )
    assert spec.pipeline.named_steps["model"].max_samples is None  # the input spec is untouched


def test_small_tables_are_not_probed():
    from lib.model.budget import plan_family

    X, y, pre = _cancer()
    p = TrainParams(family_time_budget=0.001)
    spec = model_spec("svm", "binary", pre, p, 0, len(X))
    plan = plan_family(spec, (X, y), "binary", p, 0, pre)  # 569 rows <= 20,000
    assert plan.spec is spec and plan.search_rows is None and plan.note == ""


def test_sampled_search_refits_the_best_configuration_on_every_row():
    import numpy as np
    from sklearn.base import clone

    from lib.model.search import search_family

    X, y, pre = _cancer()
    p = TrainParams(cv_folds=3, grids={"logistic": {"C": [0.1, 1.0]}})
    spec = model_spec("logistic", "binary", pre, p, 0, len(X))
    metrics = metrics_for("binary", "auto", None)
    train, validation = (X.iloc[:400], y.iloc[:400]), (X.iloc[400:], y.iloc[400:])
    result = search_family(spec, train, validation, "binary", p, metrics, 0, search_rows=150)
    full = clone(spec.pipeline).set_params(model__C=result.best_params["C"]).fit(*train)
    np.testing.assert_allclose(
        result.estimator.predict_proba(validation[0]), full.predict_proba(validation[0])
    )
