"""A tiny trained and promoted model in a tmp MLflow store, shared by the server tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from lib.core import tracking
from lib.core.params import Params, load_params
from lib.data.ingest import load_processed
from lib.model.evaluate import run_evaluation
from lib.model.train import run_training
from tests.conftest import tiny_training_overrides


@pytest.fixture(scope="package")
def served_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lib.data.ingest import run_ingest

    root = tmp_path_factory.mktemp("served")
    params = load_params(overrides=[*tiny_training_overrides(root), "evaluate.bootstrap=0"])
    run_ingest(params)
    run_training(params)
    run_evaluation(params)
    return root


@pytest.fixture(scope="package")
def served_params(served_root: Path) -> Params:
    return load_params(overrides=[*tiny_training_overrides(served_root), "evaluate.bootstrap=0"])


@pytest.fixture(scope="package")
def test_rows(served_params: Params) -> list[dict]:
    """Test-split rows as JSON-ready dicts (dates as ISO strings, NaN as null)."""
    data = load_processed(served_params)
    X, _ = data.xy("test")
    frame = X.head(40).astype(object)
    frame["signup_date"] = X["signup_date"].head(40).dt.strftime("%Y-%m-%d")
    records = frame.where(frame.notna(), None).to_dict("records")
    return [
        {
            k: (
                bool(v)
                if k in {"is_senior", "has_partner", "paperless_billing", "auto_pay"}
                and v is not None
                else v
            )
            for k, v in r.items()
        }
        for r in records
    ]


@pytest.fixture
def second_version(served_params):
    """Register the champion's model again as version N+1; put the champion back afterwards."""
    tracking.setup(served_params)
    client = MlflowClient()
    name = tracking.model_name(served_params)
    old = client.get_model_version_by_alias(name, tracking.CHAMPION)
    new = client.create_model_version(name, old.source, run_id=old.run_id, tags=old.tags)
    yield str(old.version), str(new.version)
    client.set_registered_model_alias(name, tracking.CHAMPION, old.version)


def move_champion(params, version):
    """Point the champion alias at ``version``."""
    MlflowClient().set_registered_model_alias(
        tracking.model_name(params), tracking.CHAMPION, version
    )
