"""The train stage against a real MLflow SQLite store in tmp_path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from lib.core import tracking
from lib.core.params import load_params
from lib.data.ingest import load_processed
from lib.model.train import check_gate, run_training
from tests.conftest import dirs_overrides, tiny_training_overrides

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def params(trained_root):
    return load_params(overrides=tiny_training_overrides(trained_root))


@pytest.fixture(scope="module")
def first(params):
    return run_training(params)


def client():
    from mlflow import MlflowClient

    return MlflowClient()


def test_parent_and_child_runs_are_logged(first, params):
    c = client()
    parent = c.get_run(first.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["quire.params_digest"] == params.digest()
    assert parent.data.tags["quire.best_family"] == first.best.family
    assert len(parent.data.tags["quire.manifest_sha256"]) == 64
    assert parent.data.tags["quire.git_commit"] != ""
    children = c.search_runs(
        [first.experiment_id], f"tags.mlflow.parentRunId = '{first.parent_run_id}'"
    )
    assert sorted(r.data.tags["family"] for r in children) == ["hist_gradient_boosting", "logistic"]
    for run in children:
        assert run.info.status == "FINISHED"
        assert {"cv_roc_auc_mean", "cv_roc_auc_std", "val_roc_auc", "fit_seconds_mean"} <= set(
            run.data.metrics
        )
        artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
        assert {"schema.json", "feature_importance.json", "feature_importance.png"} <= artifacts
    assert {a.path for a in c.list_artifacts(first.parent_run_id)} >= {
        "cv_scores.png",
        "data_manifest.json",
    }


def test_best_model_registered_as_challenger_with_its_preprocessing(first, params):
    import mlflow

    version = tracking.version_by_alias(first.model_name, tracking.CHALLENGER)
    assert str(version.version) == first.model_version
    assert version.tags["quire.family"] == first.best.family
    model = mlflow.sklearn.load_model(f"models:/{first.model_name}@challenger")
    X, _ = load_processed(params).xy("test")
    assert np.array_equal(model.predict_proba(X), first.best.estimator.predict_proba(X))
    info = mlflow.models.get_model_info(f"models:/{first.model_name}@challenger")
    assert set(info.signature.inputs.input_names()) == set(X.columns)
    check_gate(first)


def test_same_data_params_and_seed_reproduce_metrics_and_predictions(first, params):
    import mlflow

    second = run_training(params)
    assert int(second.model_version) == int(first.model_version) + 1
    for a, b in zip(first.families, second.families, strict=True):
        assert a.cv == b.cv and a.validation == b.validation
    X, _ = load_processed(params).xy("test")
    one = mlflow.sklearn.load_model(f"models:/{first.model_name}/{first.model_version}")
    two = mlflow.sklearn.load_model(f"models:/{first.model_name}/{second.model_version}")
    assert np.array_equal(one.predict_proba(X), two.predict_proba(X))


def test_failure_marks_runs_failed_never_running(params, monkeypatch):
    import lib.model.train

    calls = []

    def explode(spec, *args, **kwargs):
        calls.append(spec.family)
        if len(calls) == 2:
            raise RuntimeError("injected failure")
        return original(spec, *args, **kwargs)

    original = lib.model.train.search_family
    monkeypatch.setattr(lib.model.train, "search_family", explode)
    with pytest.raises(RuntimeError, match="injected failure"):
        run_training(params)
    c = client()
    experiment = c.get_experiment_by_name(tracking.experiment_name(params))
    runs = c.search_runs([experiment.experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 2  # the parent and the failing family's child


def test_tracking_uri_precedence_and_no_leak(params, first, monkeypatch, tmp_path):
    import os

    assert "MLFLOW_TRACKING_URI" not in os.environ  # setup() must not leak its choice
    assert tracking.tracking_uri(params, {}) == f"sqlite:///{params.mlflow.store_dir}/mlflow.db"
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5999"}
    assert tracking.tracking_uri(params, env) == "http://127.0.0.1:5999"
    explicit = params.model_copy(
        update={"mlflow": params.mlflow.model_copy(update={"tracking_uri": "sqlite:///x.db"})}
    )
    assert tracking.tracking_uri(explicit, env) == "sqlite:///x.db"


def test_runs_left_running_by_a_dead_process_are_closed(tmp_path):
    from mlflow import MlflowClient

    params = load_params(overrides=dirs_overrides(tmp_path))
    experiment = tracking.setup(params)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names no process
    host = socket.gethostname()
    client = MlflowClient()

    def running(pid: int | None, owner: str | None) -> str:
        tags = {k: v for k, v in (("quire.pid", pid), ("quire.host", owner)) if v is not None}
        return client.create_run(experiment, tags={k: str(v) for k, v in tags.items()}).info.run_id

    orphan = running(dead.pid, host)
    alive = running(os.getpid(), host)
    elsewhere = running(dead.pid, "another-host")
    untagged = running(None, None)
    assert tracking.close_orphaned_runs(experiment) == [orphan]
    status = {r: client.get_run(r).info.status for r in (orphan, alive, elsewhere, untagged)}
    assert status == {orphan: "FAILED", alive: "RUNNING", elsewhere: "RUNNING", untagged: "RUNNING"}
    assert "ended without closing" in client.get_run(orphan).data.tags["quire.closed"]
    assert tracking.close_orphaned_runs(experiment) == []


def test_time_budget_switch_is_in_the_report_and_mlflow(tmp_path, monkeypatch):
    from lib.data.ingest import run_ingest
    from lib.model import budget

    monkeypatch.setattr(budget, "PROBE_ROWS", 1000)  # probe tables above 2,000 training rows
    monkeypatch.setattr(budget, "PROBED_ABOVE", 2000)

    params = load_params(
        overrides=[
            *tiny_training_overrides(tmp_path),
            "generator.rows=4000",  # 2,600 training rows
            "train.families=[svm]",
            "train.grids={svm: {C: [1.0]}}",
            "train.family_time_budget=0.01",
        ]
    )
    run_ingest(params)
    result = run_training(params)
    table = result.configurations()
    note = table.loc["svm", "note"]
    assert "for the exact kernel search > train.family_time_budget 0.01 s: Nystroem" in note
    assert "grid searched on a stratified sample of 1,000 rows" in note
    assert table.loc["svm", "rows searched"] == 1000
    run = client().get_run(result.best.run_id)
    assert run.data.tags["time_budget"] == note
    assert run.data.params["search_rows"] == "1000"
    assert run.data.metrics["estimated_search_seconds"] > 0
    model = result.best.estimator.named_steps["model"]
    assert [name for name, _ in model.steps] == ["kernel", "svm"]
