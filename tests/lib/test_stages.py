from __future__ import annotations

import pytest

from lib.core.errors import ParamsError
from lib.run.stages import STAGES, get_stage, select_stages


def test_all_by_default_in_order():
    assert select_stages() == list(STAGES)


def test_only_and_from_accept_names_and_stems():
    assert [s.name for s in select_stages(only=["01_ingest"])] == ["ingest"]
    assert [s.name for s in select_stages(start="ingest")] == [s.name for s in STAGES]


def test_unknown_stage_lists_the_known_ones():
    with pytest.raises(ParamsError, match="unknown stage 'trian'; the stages are: ingest"):
        get_stage("trian")


def test_only_and_from_together_is_an_error():
    with pytest.raises(ParamsError, match="--only or --from, not both"):
        select_stages(only=["ingest"], start="ingest")


def test_outside_inputs_follow_the_raw_files(tmp_path):
    from lib.core.params import load_params
    from lib.run import fingerprint
    from lib.run.stages import get_stage
    from tests.conftest import dirs_overrides

    raw = tmp_path / "raw.csv"
    raw.write_text("a,label\n1,0\n2,1\n")
    params = load_params(overrides=[f"data.source={raw}", *dirs_overrides(tmp_path)])
    ingest = get_stage("ingest")
    before = fingerprint.outside_inputs(ingest, params)
    assert fingerprint.outside_inputs(ingest, params) == before
    raw.write_text("a,label\n1,0\n3,1\n")
    assert fingerprint.outside_inputs(ingest, params) != before
    raw.unlink()
    missing = fingerprint.outside_inputs(ingest, params)
    assert missing.startswith("unreadable") and missing != fingerprint.outside_inputs(
        ingest, params
    )
    assert fingerprint.outside_inputs(get_stage("train"), params) == ""


def test_fingerprint_finds_ingest_outputs_where_ingest_writes_them(tmp_path):
    from lib.core.params import load_params
    from lib.data import ingest
    from lib.run import fingerprint
    from tests.conftest import dirs_overrides

    params = load_params(overrides=dirs_overrides(tmp_path))
    assert fingerprint.Layout.of(params).processed == ingest.Layout.of(params).processed
    assert fingerprint.MANIFEST == ingest.MANIFEST
