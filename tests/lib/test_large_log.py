"""`quire drift`: a log checked per window in bounded memory, as the in-memory check would."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.core.layout import Layout
from lib.core.params import load_params
from lib.data.drift import check_drift
from lib.data.drift_profile import Profile
from lib.loop.replay import load_source
from lib.model.reference import DRIFT_PROFILE
from lib.monitoring import large_log
from lib.monitoring.inputs import drift_kinds
from lib.serving.loading import load_model
from tests.conftest import monitor_overrides


def test_the_production_batch_per_window_equals_the_in_memory_check(
    monitored_root, tmp_path, capsys
):
    overrides = monitor_overrides(monitored_root)
    params = load_params(overrides=overrides)
    frame, _ = load_source(params)  # the generator's drifted production batch
    folder = tmp_path / "log"
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[rows].to_parquet(folder / f"part-{i}.parquet")
    args = [str(folder), "--window-rows", "500"] + [a for o in overrides for a in ("-p", o)]
    assert large_log.main(args) == 0
    model = load_model(params, fast=False)
    layout = Layout.of(params, model=str(model.name))
    profile = Profile.load(layout.reference(str(model.version)) / DRIFT_PROFILE)
    columns = [c for c in drift_kinds(model.schema, params.monitor) if c in profile.columns]
    table = pd.read_parquet(layout.monitoring / "stream" / "windows.parquet")
    assert sorted(table["window"].unique()) == ["0", "1", "2", "all"]
    for window, rows in [("0", frame.iloc[:500]), ("2", frame.iloc[1000:]), ("all", frame)]:
        want = check_drift(profile, rows, columns=columns, drift_share=params.monitor.drift_share)
        got = table[table["window"] == window].set_index("column")
        for col in want.columns:
            assert got.loc[col.column, "method"] == col.method
            assert bool(got.loc[col.column, "drifted"]) == col.drifted
            assert got.loc[col.column, "score"] == pytest.approx(col.score, rel=1e-9)
    printed = [x for x in capsys.readouterr().out.splitlines() if not x.startswith("20")]
    assert printed[0].startswith("0: 500 rows, ") and printed[-1].startswith("written: ")


def test_a_folder_without_parquet_is_one_error_line(monitored_root, tmp_path, capsys):
    overrides = monitor_overrides(monitored_root)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert large_log.main([str(empty)] + [a for o in overrides for a in ("-p", o)]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"error: {empty}: no Parquet files in this folder; serve some requests first, "
        "or name the files to check\n"
    )
