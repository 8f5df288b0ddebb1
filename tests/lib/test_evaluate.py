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
