"""Persisted files and tags read back what earlier versions wrote, and round-trip exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.core.contracts.manifest import Manifest, read_manifest, write_manifest
from lib.core.contracts.tags import (
    evaluation_tags,
    provenance_tags,
    read_version_tags,
    version_tags,
)
from lib.core.errors import DataValidationError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"


def test_a_manifest_written_before_the_contract_reads_and_writes_back_the_same_json(tmp_path):
    old = FIXTURES / "manifest.json"
    manifest = read_manifest(old)
    assert manifest.rows == 2000 and manifest.task == "binary"
    assert manifest.splits["train"].class_counts == {"0": 1034, "1": 266}
    assert manifest.files()["preprocessor.joblib"].startswith("22ffbc3f")
    assert sorted(manifest.files()) == [
        "preprocessor.joblib",
        "test.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    write_manifest(tmp_path / "manifest.json", manifest)
    assert json.loads((tmp_path / "manifest.json").read_text()) == json.loads(old.read_text())


def test_a_missing_or_broken_manifest_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(DataValidationError, match=r"manifest.json: no processed data here; run"):
        read_manifest(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text('{"dataset": "x"}')
    with pytest.raises(DataValidationError, match=r"not a manifest Quire can read") as err:
        read_manifest(tmp_path / "manifest.json")
    assert err.value.path == str(tmp_path / "manifest.json")
    assert "missing or invalid: created_at, params_digest, preprocessor" in str(err.value)


def test_fields_added_by_a_later_version_are_kept():
    raw = json.loads((FIXTURES / "manifest.json").read_text()) | {"new_field": [1, 2]}
    assert Manifest.model_validate(raw).as_json()["new_field"] == [1, 2]


def test_version_tags_round_trip_and_parse_once():
    written = {
        **provenance_tags(
            dataset="churn",
            task="binary",
            params_digest="abc",
            manifest_sha256="m" * 64,
            schema_sha256="s" * 64,
            git_commit="deadbeef",
        ),
        **version_tags(family="random_forest", run_id="r1", primary_metric="roc_auc"),
        **evaluation_tags(
            threshold=0.4125, reference_dir="/d/v1", metric="roc_auc", score=0.81234567
        ),
    }
    assert written["quire.test_roc_auc"] == "0.812346"
    tags = read_version_tags(written)
    assert (tags.family, tags.run_id, tags.primary_metric) == ("random_forest", "r1", "roc_auc")
    assert tags.threshold == 0.4125 and isinstance(tags.threshold, float)
    assert tags.reference_dir == "/d/v1" and tags.git_commit == "deadbeef"


def test_a_version_tagged_by_an_earlier_version_has_no_threshold():
    # Earlier versions wrote str(None) for multiclass and regression models.
    tags = read_version_tags({"quire.threshold": "None", "quire.run_id": "r9", "other": "x"})
    assert tags.threshold is None and tags.run_id == "r9" and tags.family is None
    assert "quire.threshold" not in evaluation_tags(
        threshold=None, reference_dir="/d", metric="r2", score=0.5
    )


def test_run_tags_name_the_stage_the_best_family_and_the_decision():
    from lib.core.contracts.tags import best_family_tags, promotion_tags, stage_tags

    assert stage_tags("train") == {"quire.stage": "train"}
    assert best_family_tags(family="logistic", run_id="r2") == {
        "quire.best_family": "logistic",
        "quire.best_run_id": "r2",
    }
    assert promotion_tags(promoted=False, reason="no gain") == {
        "quire.promotion": "not promoted",
        "quire.promotion_reason": "no gain",
    }
