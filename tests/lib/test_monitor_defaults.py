"""The monitor's ``auto`` settings: key features come from the version, whatever the reference."""

from __future__ import annotations

import json

import pytest

from lib.core.layout import Layout
from lib.core.params import load_params
from lib.data.schema import ColumnSchema, Schema
from lib.model.reference import PROFILE
from lib.monitoring.defaults import key_features


@pytest.mark.parametrize("reference", ["champion", "training", "2024-01-01..2024-06-30", "ref.csv"])
def test_key_features_come_from_the_versions_importances(tmp_path, reference):
    params = load_params(
        overrides=[f"project.data_dir={tmp_path}", f"monitor.reference={reference}"]
    )
    schema = Schema(
        target="y",
        task="binary",
        classes=[0, 1],
        features=[ColumnSchema(name=n, kind="numeric") for n in ("a", "b", "c", "d")],
    )
    folder = Layout.of(params, model="m").reference("3")
    folder.mkdir(parents=True)
    importances = {"a": 0.1, "b": 0.4, "c": 0.0, "d": 0.2, "gone": 0.9}
    (folder / PROFILE).write_text(json.dumps({"importances": importances}))
    assert key_features(params, schema, "m", "3") == ["b", "d", "a"]
    assert key_features(params, schema, "m", None) == []
