from __future__ import annotations

import pytest

from lib.core.errors import ParamsError
from lib.model.gate import decide
from lib.model.metrics import metric

AUC = metric("roc_auc", "binary")
RMSE = metric("rmse", "regression")


def test_first_model_becomes_champion_when_it_passes_floors():
    d = decide(AUC, ("1", {"roc_auc": 0.8}), None, 0.005, {"roc_auc": 0.6})
    assert d.promote
    assert (
        d.reason
        == "Version 1 becomes champion: there was no champion yet and it passes every floor (roc_auc 0.8000)."
    )


def test_first_model_below_floor_is_not_promoted():
    d = decide(AUC, ("1", {"roc_auc": 0.55}), None, 0.005, {"roc_auc": 0.6})
    assert not d.promote and d.failed_floors == ("roc_auc 0.5500 is below the floor 0.6",)
    assert "there is no champion" in d.reason


def test_better_challenger_is_promoted():
    d = decide(AUC, ("3", {"roc_auc": 0.81}), ("2", {"roc_auc": 0.80}), 0.005, {})
    assert d.promote
    assert (
        d.reason
        == "Version 3 becomes champion: its roc_auc 0.8100 beats champion version 2's 0.8000 by 0.0100 (min_delta 0.005)."
    )


@pytest.mark.parametrize("score", [0.79, 0.80, 0.804])
def test_worse_equal_or_not_enough_better_keeps_champion(score):
    d = decide(AUC, ("3", {"roc_auc": score}), ("2", {"roc_auc": 0.80}), 0.005, {})
    assert not d.promote
    assert d.reason.startswith(
        f"Champion version 2 stays: challenger version 3's roc_auc {score:.4f} does not beat its 0.8000 by min_delta 0.005"
    )


def test_floor_beats_improvement():
    d = decide(
        AUC,
        ("3", {"roc_auc": 0.9, "accuracy": 0.4}),
        ("2", {"roc_auc": 0.8, "accuracy": 0.7}),
        0.0,
        {"accuracy": 0.5},
    )
    assert not d.promote and "accuracy 0.4000 is below the floor 0.5" in d.reason


def test_loss_metrics_improve_downwards():
    d = decide(RMSE, ("3", {"rmse": 1.0}), ("2", {"rmse": 1.2}), 0.1, {"rmse": 2.0})
    assert d.promote
    d = decide(RMSE, ("3", {"rmse": 2.5}), None, 0.1, {"rmse": 2.0})
    assert not d.promote and "rmse 2.5000 is above the ceiling 2" in d.reason


def test_same_version_is_already_champion():
    d = decide(AUC, ("2", {"roc_auc": 0.8}), ("2", {"roc_auc": 0.8}), 0.005, {})
    assert not d.promote and d.reason == "Version 2 is already champion (roc_auc 0.8000)."


def test_unknown_floor_metric_names_the_key():
    with pytest.raises(ParamsError, match="evaluate.floors.rmse: no such metric for this task"):
        decide(AUC, ("1", {"roc_auc": 0.8}), None, 0.0, {"rmse": 1.0})


def test_suspected_leak_blocks_promotion_and_names_the_column_and_params():
    leak = ("leak", "column 'leak' alone predicts the target")
    d = decide(AUC, ("2", {"roc_auc": 0.99}), ("1", {"roc_auc": 0.8}), 0.005, {}, [leak])
    assert not d.promote and d.leakage == ("leak",)
    assert d.reason == (
        "Version 2 is not promoted (champion version 1 stays): suspected leakage: column 'leak' "
        "alone predicts the target. Remove 'leak' (data.drop) and retrain or, if legitimate, "
        "list 'leak' in evaluate.leakage_acknowledged (evaluate.block_on_leakage: false turns "
        "the check off)."
    )
    first = decide(AUC, ("1", {"roc_auc": 0.99}), None, 0.005, {}, [leak])
    assert not first.promote and "(there is no champion)" in first.reason


def test_undefined_primary_metric_is_not_promoted():
    d = decide(AUC, ("1", {"roc_auc": float("nan")}), None, 0.005, {"roc_auc": 0.6})
    assert not d.promote
    assert d.reason.startswith("Version 1 is not promoted: its test roc_auc is undefined")


def test_blocking_leaves_out_acknowledged_columns_and_can_be_switched_off():
    from lib.model.leakage import LeakageFinding, blocking

    found = [
        LeakageFinding("a", "single_feature", "balanced_accuracy", 0.99, "a leaks"),
        LeakageFinding("b", "validation_above_cv", "roc_auc", 0.97, "b leaks"),
    ]
    assert blocking(found, [], True) == [("a", "a leaks"), ("b", "b leaks")]
    assert blocking(found, ["a"], True) == [("b", "b leaks")]
    assert blocking(found, [], False) == []
