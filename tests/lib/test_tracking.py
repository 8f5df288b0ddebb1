"""The MLflow store the commands agree on (make mlflow-ui opens the one the stages write)."""

from __future__ import annotations

import pytest

from lib.core import tracking
from lib.core.params import load_params


def test_ui_command_opens_the_projects_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = load_params(overrides=[f"mlflow.store_dir={tmp_path / 'store'}"])
    command = tracking.ui_command(params, 5123)
    assert command is not None and command[1] == "ui"
    assert command[command.index("--backend-store-uri") + 1] == tracking.tracking_uri(params)
    assert tracking.tracking_uri(params) == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert command[-4:] == ["--host", "127.0.0.1", "--port", "5123"]


def test_ui_command_leaves_a_tracking_server_alone():
    params = load_params(overrides=["mlflow.tracking_uri=http://mlflow.example.internal:5000"])
    assert tracking.ui_command(params, 5000) is None


def test_ui_main_names_a_bad_parameter(capsys):
    assert tracking.main(["-p", "mlflow.store_dirr=x"]) == 2
    assert "store_dirr" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "key"),
    [
        (
            "test_precision_Adelie Penguin (Pygoscelis adeliae)",
            "test_precision_Adelie Penguin _Pygoscelis adeliae",
        ),
        ("val_f1_a/b c:d-e.f", "val_f1_a/b c:d-e.f"),
        ("test_recall_Ü", "test_recall"),
    ],
)
def test_metric_keys_keep_only_what_mlflow_accepts(name, key):
    from mlflow.utils.validation import _validate_metric_name

    from lib.core.tracking import metric_key

    assert metric_key(name) == key
    _validate_metric_name(metric_key(name))  # raises on a name MLflow refuses
