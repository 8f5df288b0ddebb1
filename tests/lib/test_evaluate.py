"""The evaluate stage against a real MLflow store: promotion, refusal, reference, logging."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lib.core import tracking
from lib.core.errors import DataValidationError, ParamsError
from lib.core.layout import Layout
from lib.core.params import load_params
from lib.model.evaluate import check_gate, run_evaluation
from lib.model.train import run_training
from tests.conftest import tiny_training_overrides

pytestmark = pytest.mark.slow
WEAK = [
    "train.families=[random_forest]",
    "train.grids={random_forest: {n_estimators: [1], max_depth: [1]}}",
]


@pytest.fixture(scope="module")
def params(trained_root):
    return load_params(overrides=[*tiny_training_overrides(trained_root), "evaluate.bootstrap=50"])


@pytest.fixture(scope="module")
def first(params):
    run_training(params)
    return run_evaluation(params)


def test_first_model_becomes_champion_and_gets_a_reference(first, params):
    assert first.decision.promote
    assert first.decision.reason.startswith(
        f"Version {first.version} becomes champion: there was no champion yet"
    )
    champion = tracking.version_by_alias(first.model_name, tracking.CHAMPION)
    assert str(champion.version) == first.version
    assert float(champion.tags["quire.threshold"]) == first.threshold
    ref = pd.read_parquet(first.reference / "reference.parquet")
    assert len(ref) == len(first.y) and {"prediction", "proba_0", "proba_1"} <= set(ref.columns)
    profile = json.loads((first.reference / "profile.json").read_text())
    assert profile["version"] == first.version and profile["rows"] == len(ref)
    assert profile["columns"]["contract_type"]["kind"] == "categorical"
    assert len(profile["columns"]["monthly_charges"]["quantiles"]) == 101
    assert (
        first.reference
        == Layout.of(params).processed.parents[1]
        / "reference"
        / first.model_name
        / f"v{first.version}"
    )
    check_gate(first)


def test_metrics_and_decision_logged_to_the_challenger_run(first):
    from mlflow import MlflowClient

    version = tracking.version_by_alias(first.model_name, tracking.CHAMPION)
    run = MlflowClient().get_run(version.tags["quire.run_id"])
    assert run.data.metrics["test_roc_auc"] == pytest.approx(first.scores.loc["roc_auc", "value"])
    assert (
        run.data.metrics["test_roc_auc_ci_low"]
        < run.data.metrics["test_roc_auc"]
        < run.data.metrics["test_roc_auc_ci_high"]
    )
    assert run.data.tags["quire.promotion"] == "promoted"
    assert run.data.tags["quire.promotion_reason"] == first.decision.reason
    assert run.info.status == "FINISHED"


def test_weaker_challenger_leaves_the_champion_and_says_why(first, trained_root):
    weak = load_params(
        overrides=[
            *tiny_training_overrides(trained_root),
            "evaluate.bootstrap=20",
            *WEAK,
        ]
    )
    run_training(weak)
    second = run_evaluation(weak)
    assert not second.decision.promote
    assert second.decision.reason.startswith(
        f"Champion version {first.version} stays: challenger version {second.version}'s roc_auc"
    )
    assert second.champion_scores is not None
    assert (
        str(tracking.version_by_alias(first.model_name, tracking.CHAMPION).version) == first.version
    )
    assert second.reference.name == f"v{second.version}"


def test_unknown_segment_column(first, trained_root):
    bad = load_params(
        overrides=[
            *tiny_training_overrides(trained_root),
            "evaluate.segments=[tenure_months]",
        ]
    )
    with pytest.raises(
        ParamsError, match=r"evaluate.segments: \['tenure_months'\] are not categorical"
    ):
        run_evaluation(bad)


def test_changed_data_since_training_is_refused(first, trained_root):
    from lib.data.ingest import run_ingest

    changed = load_params(
        overrides=[
            *tiny_training_overrides(trained_root),
            "generator.rows=700",
        ]
    )
    run_ingest(changed)
    with pytest.raises(DataValidationError, match="processed data changed since version"):
        run_evaluation(changed)


def _real_table_params(root, source, target, *extra):
    """A newcomer's preset on a real table: source and target (segments: another slice's)."""
    from lib.core.params import folder_overrides

    return load_params(
        overrides=[
            f"data.source={source}",
            f"data.target={target}",
            "data.id_column=null",
            "data.date_column=null",
            "evaluate.segments=[]",
            "project.name=real",
            *folder_overrides(root),
            "train.families=[logistic]",
            "train.learning_curve=false",
            "evaluate.bootstrap=20",
            *extra,
        ]
    )


def test_leaked_column_blocks_promotion_until_acknowledged(tmp_path):
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    from lib.data.ingest import run_ingest

    frame = load_breast_cancer(as_frame=True).frame
    flip = np.random.default_rng(0).random(len(frame)) < 0.01
    frame["review_code"] = np.where(flip, 1 - frame["target"], frame["target"])
    path = tmp_path / "cancer.csv"
    frame.to_csv(path, index=False)
    params = _real_table_params(tmp_path, path, "target")
    run_ingest(params)
    run_training(params)
    blocked = run_evaluation(params)
    assert not blocked.decision.promote
    assert blocked.decision.leakage == ("review_code",)
    assert "list 'review_code' in evaluate.leakage_acknowledged" in blocked.decision.reason
    assert blocked.leakage_table()["column"].tolist()[0] == "review_code"
    run = tracking.version_by_alias(blocked.model_name, tracking.CHALLENGER)
    from mlflow import MlflowClient

    tags = MlflowClient().get_run(run.run_id).data.tags
    assert tags["leakage_columns"] == "review_code"
    acknowledged = run_evaluation(
        _real_table_params(tmp_path, path, "target", "evaluate.leakage_acknowledged=[review_code]")
    )
    assert acknowledged.decision.promote, acknowledged.decision.reason
    assert acknowledged.leakage_table()["acknowledged"].all()


def test_clean_real_table_is_promoted_without_leakage_finding(tmp_path):
    from sklearn.datasets import load_breast_cancer

    from lib.data.ingest import run_ingest

    path = tmp_path / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(path, index=False)
    params = _real_table_params(tmp_path, path, "target")
    run_ingest(params)
    run_training(params)
    result = run_evaluation(params)
    assert result.leakage == [] and result.decision.promote, result.decision.reason
    assert result.single_feature is not None and result.single_feature["score"].max() < 0.98


def test_time_split_with_a_class_only_early_trains_evaluates_and_states_averages(tmp_path):
    from lib.data.ingest import run_ingest
    from lib.model.evaluate import figures
    from tests.lib.test_split import wine_by_date

    path = tmp_path / "wine.csv"
    wine_by_date().to_csv(path, index=False)
    params = _real_table_params(
        tmp_path,
        path,
        "target",
        "data.date_column=tasted",
        "ingest.split.by_time=true",
        "train.families=[logistic, random_forest]",
    )
    ingest = run_ingest(params)
    assert "class_missing_in_split" in ingest.report["check"].tolist()
    run_training(params)
    result = run_evaluation(params)
    assert result.classes == ["barbera", "barolo", "grignolino"]
    assert result.averaging.startswith(
        "Macro averages are over the 2 of 3 classes present in the test split: 'barbera' has no "
        "test rows"
    )
    assert pd.isna(result.scores.loc["recall[barbera]", "value"])
    assert 0.5 < result.scores.loc["roc_auc", "value"] <= 1.0
    assert len(figures(result, 0)) == 3  # confusion, ROC/PR, calibration: none crashes
    assert result.decision.reason
