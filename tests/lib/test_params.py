from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from lib.core.errors import ParamsError
from lib.core.params import Params, from_sections, load_params
from lib.core.paths import BASE_PARAMS


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_base_yaml_holds_every_default_and_nothing_else():
    raw = yaml.safe_load(BASE_PARAMS.read_text())
    sections = {name: field.annotation for name, field in Params.model_fields.items()}
    assert set(raw) == set(sections)
    for name, section in sections.items():
        defaults = section().model_dump(mode="json")  # type: ignore[misc]
        assert set(raw[name]) == set(defaults), name
        assert section(**raw[name]).model_dump(mode="json") == defaults, name  # type: ignore[misc]


def test_base_yaml_names_no_column_of_any_table():
    """Every setting naming columns is auto or empty in base.yaml: the built-in data's live in
    params/builtin/generator.yaml, layered only for data.source: generator."""
    raw = yaml.safe_load(BASE_PARAMS.read_text())
    assert raw["data"]["target"] is None
    assert raw["data"]["id_column"] is None and raw["data"]["date_column"] is None
    assert raw["evaluate"]["segments"] == "auto" and raw["evaluate"]["floors"] == "auto"
    assert raw["monitor"]["alerts"]["key_features"] == "auto"
    assert raw["monitor"]["alerts"]["metric_drop"] == "auto"
    assert raw["monitor"]["current"] == "auto"


def test_layers_apply_in_order(tmp_path):
    preset = write(tmp_path / "p.yaml", "ingest:\n  split:\n    test: 0.3\n    validation: 0.1\n")
    params = load_params([preset])
    assert (params.ingest.split.test, params.ingest.split.validation) == (0.3, 0.1)
    env = {"QUIRE__INGEST__SPLIT__TEST": "0.25", "UNRELATED": "x"}
    params = load_params([preset], env=env)
    assert params.ingest.split.test == 0.25
    assert params.ingest.split.validation == 0.1  # untouched keys survive deep merge
    params = load_params([preset], ["ingest.split.test=0.2"], env=env)
    assert params.ingest.split.test == 0.2


def test_override_values_are_parsed_as_yaml():
    params = load_params(
        overrides=["data.drop=[a, b]", "data.id_column=null", "generator.rows=500"]
    )
    assert params.data.drop == ["a", "b"]
    assert params.data.id_column is None
    assert params.generator.rows == 500


def test_unknown_key_names_key_file_and_allowed(tmp_path):
    preset = write(tmp_path / "typo.yaml", "ingest:\n  split:\n    tset: 0.3\n")
    with pytest.raises(ParamsError) as info:
        load_params([preset])
    msg = str(info.value)
    assert str(preset) in msg
    assert "unknown key 'ingest.split.tset'" in msg
    assert "allowed in ingest.split: by_time, test, validation" in msg
    assert "did you mean 'test'" in msg
    assert info.value.key == "ingest.split.tset"
    assert info.value.source == str(preset)


def test_unknown_section(tmp_path):
    with pytest.raises(ParamsError, match=r"-p trian.cv_folds: unknown key 'trian'"):
        load_params(overrides=["trian.cv_folds=3"])


def test_wrong_type_from_env_names_the_variable():
    with pytest.raises(ParamsError) as info:
        load_params(env={"QUIRE__GENERATOR__ROWS": "many"})
    assert "env QUIRE__GENERATOR__ROWS: key 'generator.rows'" in str(info.value)
    assert "valid integer" in str(info.value)
    assert "'many'" in str(info.value)


def test_out_of_range_and_literal_choices():
    with pytest.raises(ParamsError, match=r"key 'ingest.split.test'.*less than 1"):
        load_params(overrides=["ingest.split.test=1.5"])
    with pytest.raises(ParamsError, match=r"key 'data.task'.*'auto', 'binary'"):
        load_params(overrides=["data.task=clustering"])
    with pytest.raises(ParamsError, match=r"validation \+ test = 0.95"):
        load_params(overrides=["ingest.split.test=0.5", "ingest.split.validation=0.45"])


def test_bad_yaml_names_file_and_line(tmp_path):
    preset = write(tmp_path / "bad.yaml", "ingest:\n  split:\n    test: [0.2\n")
    with pytest.raises(ParamsError) as info:
        load_params([preset])
    assert str(preset) in str(info.value)
    assert "invalid YAML" in str(info.value)
    assert "line" in str(info.value)


def test_preset_must_be_a_mapping_and_exist(tmp_path):
    with pytest.raises(ParamsError, match="expected a mapping of sections"):
        load_params([write(tmp_path / "list.yaml", "- a\n- b\n")])
    with pytest.raises(ParamsError, match="params file not found"):
        load_params([tmp_path / "missing.yaml"])


def test_malformed_env_and_override():
    with pytest.raises(ParamsError, match="QUIRE__SECTION__KEY"):
        load_params(env={"QUIRE__INGEST____TEST": "1"})
    with pytest.raises(ParamsError, match="expected KEY=VALUE"):
        load_params(overrides=["ingest.split.test"])


def test_digest_is_stable_and_sensitive():
    assert Params().digest() == load_params().digest()
    assert load_params(overrides=["project.seed=7"]).digest() != Params().digest()


def test_from_sections_names_the_notebook_parameter():
    params = from_sections(ingest={"split": {"test": 0.3}})
    assert params.ingest.split.test == 0.3
    with pytest.raises(ParamsError, match="notebook parameter 'ingest'"):
        from_sections(ingest={"bogus": 1})


def test_dotenv_layers_parameters_and_exports_the_rest(tmp_path, monkeypatch):
    """``.env`` gives QUIRE__ parameters and exports every other variable the process lacks."""
    from lib.core.env import environment

    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "QUIRE__PROJECT__SEED=7\nQUIRE_ALERT_WEBHOOK_URL=http://127.0.0.1:9/hook\n"
        "QUIRE_TEST_SET_BY_PROCESS=from-dotenv\n"
    )
    for name in ("QUIRE__PROJECT__SEED", "QUIRE_ALERT_WEBHOOK_URL"):
        monkeypatch.setenv(name, "")  # recorded, so that the test's exports are undone after it
        monkeypatch.delenv(name)
    monkeypatch.setenv("QUIRE_TEST_SET_BY_PROCESS", "from-process")
    env = environment(dotenv)
    assert load_params(env=env).project.seed == 7
    # exported: the stage kernels and the alert webhook read os.environ
    assert os.environ["QUIRE_ALERT_WEBHOOK_URL"] == "http://127.0.0.1:9/hook"
    assert env["QUIRE_TEST_SET_BY_PROCESS"] == os.environ["QUIRE_TEST_SET_BY_PROCESS"]
    assert os.environ["QUIRE_TEST_SET_BY_PROCESS"] == "from-process"  # the process wins


def test_dotenv_exports_are_undone_after_the_test_above():
    assert "QUIRE__PROJECT__SEED" not in os.environ and "QUIRE_ALERT_WEBHOOK_URL" not in os.environ
