"""Leakage checks on real tables: a leaked copy of the target is found, clean tables are not."""

from __future__ import annotations

import numpy as np
import palmerpenguins
import pandas as pd
import pytest
from sklearn import datasets

from lib.model.leakage import blocking, leakage_findings, single_feature_scores


def _split(X: pd.DataFrame, y: pd.Series, seed: int = 0):
    order = np.random.default_rng(seed).permutation(len(X))
    n = len(X)
    train, validation = order[: int(n * 0.65)], order[int(n * 0.65) : int(n * 0.8)]
    return (X.iloc[train], y.iloc[train]), (X.iloc[validation], y.iloc[validation])


def _table(name: str) -> tuple[pd.DataFrame, pd.Series, str]:
    if name == "penguins":
        frame = palmerpenguins.load_penguins().dropna(subset=["species"])
        return frame.drop(columns="species"), frame["species"], "multiclass"
    loader, task = {
        "breast_cancer": (datasets.load_breast_cancer, "binary"),
        "wine": (datasets.load_wine, "multiclass"),
        "diabetes": (datasets.load_diabetes, "regression"),
    }[name]
    frame = loader(as_frame=True).frame
    return frame.drop(columns="target"), frame["target"], task


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "diabetes", "penguins"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_real_tables_raise_no_finding(name, seed):
    X, y, task = _table(name)
    classes = None if task == "regression" else sorted(y.unique())
    scores = single_feature_scores(*_split(X, y, seed), task, classes)
    assert set(scores.index) == set(X.columns)
    assert scores["score"].max() < 0.96  # measured: at most 0.9502 (breast_cancer)
    assert leakage_findings(scores, 0.98) == []


def test_leaked_copy_of_the_target_is_named():
    X, y, task = _table("breast_cancer")
    flip = np.random.default_rng(0).random(len(y)) < 0.01
    leaked = X.assign(diagnosis_code=np.where(flip, 1 - y, y))
    scores = single_feature_scores(*_split(leaked, y), task, [0, 1])
    assert scores.index[0] == "diagnosis_code"
    found = leakage_findings(scores, 0.98)
    assert [f.column for f in found] == ["diagnosis_code"]
    assert found[0].message.startswith(
        "column 'diagnosis_code' alone predicts the target: a one-column model scores "
        "balanced_accuracy "
    )


def test_leaked_regression_target_and_categorical_leak():
    X, y, _ = _table("diabetes")
    noise = np.random.default_rng(0).normal(0, 0.05 * y.std(), len(y))
    scores = single_feature_scores(*_split(X.assign(leak=y + noise), y), "regression", None)
    assert scores.index[0] == "leak" and scores.loc["leak", "metric"] == "r2"
    assert scores.loc["leak", "score"] >= 0.98
    P, species, _ = _table("penguins")
    coded = P.assign(code=species.map({"Adelie": "A1", "Chinstrap": "C2", "Gentoo": "G3"}))
    classes = sorted(species.unique())
    found = leakage_findings(
        single_feature_scores(*_split(coded, species), "multiclass", classes), 0.98
    )
    assert [f.column for f in found] == ["code"]


def test_validation_far_above_cv_is_a_finding_naming_the_top_column():
    scores = pd.DataFrame({"metric": ["r2"], "score": [0.3]}, index=pd.Index(["x"], name="column"))
    found = leakage_findings(scores, 0.98, ("roc_auc", 0.95, 0.80, 0.01, True), "x")
    assert [(f.check, f.column) for f in found] == [("validation_above_cv", "x")]
    assert found[0].message == (
        "validation roc_auc 0.9500 is far better than cross-validation 0.8000 ± 0.0100: something "
        "differs between train and validation; the model leans most on column 'x'"
    )
    assert leakage_findings(scores, 0.98, ("roc_auc", 0.83, 0.80, 0.01, True), "x") == []  # < 0.05
    assert leakage_findings(scores, 0.98, ("roc_auc", 0.90, 0.80, 0.04, True), "x") == []  # < 3 std


def test_a_loss_far_below_cv_is_the_finding_in_its_own_values():
    """rmse is a loss: validation far *below* CV is the suspicious direction, shown unsigned."""
    scores = pd.DataFrame({"metric": ["r2"], "score": [0.3]}, index=pd.Index(["x"], name="column"))
    found = leakage_findings(scores, 0.98, ("rmse", 0.40, 0.55, 0.01, False), "x")  # 27 % better
    assert found[0].message.startswith(
        "validation rmse 0.4000 is far better than cross-validation 0.5500 ± 0.0100"
    )
    assert leakage_findings(scores, 0.98, ("rmse", 0.70, 0.55, 0.01, False), "x") == []
    # statsmodels' co2: 11 % better than CV with a tight CV spread is not "far" for a loss
    assert leakage_findings(scores, 0.98, ("rmse", 0.4833, 0.5434, 0.0156, False), "x") == []


def test_a_table_with_no_column_to_judge_has_no_finding():
    """statsmodels' co2: the date is the only feature and dates are not judged."""
    X, y, _ = _table("diabetes")
    empty = X.iloc[:, :0]
    scores = single_feature_scores(*_split(empty, y), "regression", None)
    assert scores.empty and list(scores.columns) == ["metric", "score"]
    assert leakage_findings(scores, 0.98) == []


def _small_split(X: pd.DataFrame, y: pd.Series, seed: int, train: int, validation: int):
    order = np.random.default_rng(seed).permutation(len(X))
    fit, held = order[:train], order[train : train + validation]
    return (X.iloc[fit], y.iloc[fit]), (X.iloc[held], y.iloc[held])


@pytest.mark.parametrize(("name", "train", "validation"), [("spector", 21, 5), ("iris", 105, 22)])
def test_a_perfect_column_on_few_validation_rows_is_shown_but_never_blocks(name, train, validation):
    """statsmodels' spector (32 rows) and scikit-learn's iris (150): an honest strong column
    scores 1.0 alone on a few validation rows in 30 % (6 of 20 splits) and 35 % (7 of 20) of
    random splits, and blocked the first model as a leak."""
    import statsmodels.datasets

    if name == "spector":
        frame, target = statsmodels.datasets.spector.load_pandas().data, "GRADE"
    else:
        frame, target = datasets.load_iris(as_frame=True).frame, "target"
    X, y = frame.drop(columns=target), frame[target]
    classes = sorted(y.unique())
    task = "binary" if len(classes) == 2 else "multiclass"
    perfect = 0
    for seed in range(20):
        scores = single_feature_scores(*_small_split(X, y, seed, train, validation), task, classes)
        found = leakage_findings(scores, 0.98, validation_rows=validation)
        perfect += bool(found)
        assert all(not f.blocks for f in found)
        assert blocking(found, [], block=True) == []
        for f in found:
            assert f.message.endswith(
                f"but validation holds {validation} rows, too few to tell a leak from chance "
                "(at least 60); not judged, check the column yourself"
            )
    assert perfect >= 5  # the case is real: the same splits blocked before
    # judged on 60 validation rows, the same scores block
    judged = leakage_findings(scores, 0.0, validation_rows=60)
    assert judged and all(f.blocks for f in judged) and blocking(judged, [], block=True)


def test_a_leaked_copy_blocks_on_sixty_validation_rows():
    X, y, task = _table("breast_cancer")
    flip = np.random.default_rng(0).random(len(y)) < 0.01
    leaked = X.assign(diagnosis_code=np.where(flip, 1 - y, y))
    scores = single_feature_scores(*_small_split(leaked, y, 0, 300, 60), task, [0, 1])
    found = leakage_findings(scores, 0.98, validation_rows=60)
    assert [(f.column, f.blocks) for f in found] == [("diagnosis_code", True)]
    assert blocking(found, [], block=True) == [("diagnosis_code", found[0].message)]
    assert blocking(found, ["diagnosis_code"], block=True) == []
