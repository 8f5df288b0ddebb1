"""Real tables, first try and the loop: the corpus's harness, and its smallest tables through run_all.

The slow tests run the smallest binary, regression and multiclass tables of
``bench/real_data_corpus.py`` through ``run_all.py`` with the minimal preset a new user writes
(``project.name``, ``data.source``, ``data.target``) and ``params/ci.yaml``'s training sizes:
exit 0, a champion registered, a test metric better than the simplest baseline; for one of them
the loop after it too (serve, replay, monitor): rows in the prediction log and a monitor verdict.
The fast tests check the harness itself.
"""

from __future__ import annotations

import gzip
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import palmerpenguins
import pandas as pd
import plotly
import pytest
import yaml
from sklearn.datasets import load_diabetes

from bench.real_data import baseline, last_error_line, main, run_dataset, shown_command
from bench.real_data_corpus import CORPUS, SMOKE, by_name
from bench.real_data_loop import (
    REPLAY_ROWS,
    Loop,
    free_port,
    layer_args,
    replay_command,
    replay_error,
    run_all_command,
    server_environment,
    stop_group,
)
from bench.real_data_report import Outcome, load_outcomes, report, results_table, save_outcomes

# --------------------------------------------------------------------------------------------
# The corpus and the harness (fast)


def test_the_corpus_covers_what_the_issue_asks():
    assert len(CORPUS) >= 10
    assert len({d.name for d in CORPUS}) == len(CORPUS)
    assert {d.task for d in CORPUS} == {"binary", "multiclass", "regression"}
    covered = " ".join(c for d in CORPUS for c in d.covers)
    for need in ("date", "coded categor", "id", "free text", "missing", "high-cardinality"):
        assert need in covered, need
    assert "absent from the validation and test folds" in covered


@pytest.mark.parametrize("dataset", CORPUS, ids=lambda d: d.name)
def test_each_table_exports_as_shipped_with_a_minimal_preset(dataset, tmp_path):
    source = dataset.export(tmp_path)
    frame = pd.read_parquet(source) if source.suffix == ".parquet" else pd.read_csv(source)
    assert dataset.target in frame.columns
    assert len(frame) >= 30  # spector's 32 rows: the smallest, on purpose
    preset = dataset.preset(source)
    assert preset["project"] == {"name": dataset.name}
    assert preset["data"]["source"] == str(source)
    assert preset["data"]["target"] == dataset.target
    # only what the table needs: nothing that names the generator's columns or resets a default
    # (tips' rename: its first run stops asking for it, as its 'time' is the log's own column)
    allowed = {"project": {"name"}, "data": {"source", "target", "date_column", "task", "rename"}}
    allowed["ingest"] = {"split"}
    for section, values in preset.items():
        assert set(values) <= allowed.get(section, set()), (section, values)


def test_penguins_raw_keeps_its_free_text_ids_and_dates(tmp_path):
    (dataset,) = by_name(["penguins_raw"])
    frame = pd.read_csv(dataset.export(tmp_path))
    assert frame["Comments"].str.contains("Not enough blood for isotopes.").sum() >= 7
    assert frame["Individual ID"].iloc[0] == "N1A1"
    assert frame["Date Egg"].iloc[0] == "2007-11-11"
    assert frame["Sex"].isna().sum() == 11


def test_packaged_csv_files_are_copied_byte_for_byte(tmp_path):
    (raw, stocks) = by_name(["penguins_raw", "stocks"])
    shipped = Path(palmerpenguins.__file__).parent / "data" / "penguins-raw.csv"
    assert raw.export(tmp_path).read_bytes() == shipped.read_bytes()
    packaged = Path(plotly.__file__).parent / "package_data" / "datasets" / "stocks.csv.gz"
    assert stocks.export(tmp_path).read_bytes() == gzip.decompress(packaged.read_bytes())


def test_sklearn_tables_keep_their_values(tmp_path):
    (dataset,) = by_name(["diabetes"])
    exported = pd.read_csv(dataset.export(tmp_path))
    pd.testing.assert_frame_equal(exported, load_diabetes(as_frame=True, scaled=False).frame)
    assert sorted(exported["sex"].unique()) == [1.0, 2.0]  # the coded category, as shipped


def test_an_unknown_only_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--only", "wine,titanic"])
    assert info.value.code == 2
    assert "--only: not in the corpus: ['titanic']" in capsys.readouterr().err


def test_co2_writes_its_index_dates_as_a_column_and_keeps_missing_targets(tmp_path):
    (dataset,) = by_name(["co2"])
    frame = pd.read_csv(dataset.export(tmp_path))
    assert list(frame.columns) == ["date", "co2"]
    assert frame["date"].iloc[0] == "1958-03-29"
    assert frame["co2"].isna().sum() == 59


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(KeyError) as info:
        by_name(["penguins", "titanic"])
    assert "['titanic']" in str(info.value) and "breast_cancer" in str(info.value)


@pytest.mark.parametrize(
    ("metric", "task", "expected"),
    [
        ("rmse", "regression", 1.0),  # mean 2 on train; |1-2|, |3-2| on test
        ("r2", "regression", 0.0),  # test mean equals train mean: r2 exactly 0
        ("f1_macro", "multiclass", (2 * 0.5 / 1.5) / 3),  # always 'a': f1 2/3 for a, 0 for b, c
        ("accuracy", "multiclass", 0.5),
        ("roc_auc", "binary", 0.5),
    ],
)
def test_baseline_is_the_majority_class_or_the_mean(metric, task, expected):
    if task == "regression":
        train, test = pd.Series([1.0, 2.0, 3.0, None]), pd.Series([1.0, 3.0])
        assert baseline(metric, task, train, test) == pytest.approx(expected)
        return
    train = pd.Series(["a", "a", "a", "b", "c"])
    test = pd.Series(["a", "a", "b", "c"])
    assert baseline(metric, task, train, test) == pytest.approx(expected)
    # integer classes, as a processed split may hold them (object dtype): the same figure
    codes = {"a": 0, "b": 1, "c": 2}
    as_ints = [s.map(codes).astype(object) for s in (train, test)]
    assert baseline(metric, task, *as_ints) == pytest.approx(expected)


def test_an_outcome_beats_its_baseline_in_the_metric_s_direction():
    (dataset,) = by_name(["diabetes"])
    loss = Outcome(dataset, 442, 0, 1.0, metric="rmse", score=50.0, baseline=70.0)
    loss.higher_is_better = False
    assert loss.beats_baseline is True
    score = Outcome(dataset, 442, 0, 1.0, metric="r2", score=0.1, baseline=0.2)
    assert score.beats_baseline is False
    assert Outcome(dataset, 442, 1, 1.0).beats_baseline is None


def test_results_table_shows_the_failure_and_the_comparison():
    (dataset,) = by_name(["wine"])
    error = (
        "02_train.ipynb failed in cell 5 (In [4] in the report): "
        "/any/temporary/folder/wine/data/raw/wine.csv: bad | column"
    )
    failed = Outcome(dataset, 178, 1, 12.3, failed_stage="ingest", error=error)
    ok = Outcome(dataset, 178, 0, 61.0, task="multiclass", metric="f1_macro", score=0.97)
    ok.baseline = 0.18
    ok.loop = Loop(served_rows=178, monitor_exit=0, monitor_status="ok", verdict="no drift")
    ok.loop.alerts, ok.loop.replay_seconds, ok.loop.monitor_seconds = ["a", "b"], 3.2, 40.6
    table = results_table([failed, ok]).splitlines()
    assert table[0].count("|") == table[1].count("|") == 13  # twelve columns
    assert "| wall s | rows served | monitor exit | monitor verdict" in table[0]
    assert table[2].startswith(
        "| wine | multiclass | 178 | 1 | ingest: data/raw/wine.csv: bad \\| column | - |"
    )
    assert table[2].endswith("| 12 | - | - | not run | - |")
    assert "f1_macro 0.970 vs 0.180 ✓" in table[3]
    assert table[3].endswith("| 61 | 178 | 0 | no drift (2 alerts); fired: a, b | 3 + 41 |")


def test_a_failed_loop_step_shows_its_error_line_without_the_machine_s_folders():
    (dataset,) = by_name(["diabetes"])
    outcome = Outcome(dataset, 442, 0, 90.0, metric="rmse", score=55.0, baseline=70.0)
    outcome.loop = Loop(failed_step="server", error="ModelNotFoundError: /x/y/mlruns/db: none")
    assert results_table([outcome]).endswith(
        "| - | - | server: ModelNotFoundError: mlruns/db: none | - |"
    )
    skipped = Loop(served_rows=0, monitor_exit=0, monitor_status="skipped")
    skipped.verdict = "skipped: no current data yet: the prediction log /t/d/data/predictions/m"
    skipped.replay_seconds, skipped.monitor_seconds = 1.0, 20.0
    outcome.loop = skipped
    row = results_table([outcome]).splitlines()[2]
    assert row.endswith(
        "| 0 | 0 | skipped: no current data yet: the prediction log data/predictions/m | 1 + 20 |"
    )


def test_the_page_counts_the_loop_and_survives_json(tmp_path):
    (dataset,) = by_name(["wine"])
    failed = Outcome(dataset, 178, 1, 20.0, failed_stage="ingest", error="no customer_id")
    ok = Outcome(dataset, 178, 0, 100.0, task="multiclass", metric="f1_macro", score=0.9)
    ok.baseline, ok.finished_at, ok.champion = 0.2, "2026-01-02 03:04 UTC", "1"
    ok.loop = Loop(port=1234, served_rows=178, monitor_exit=0, monitor_status="ok")
    ok.loop.replay_seconds, ok.loop.monitor_seconds, ok.loop.alerts = 5.0, 15.0, ["drift"]
    save_outcomes([failed, ok], tmp_path / "outcomes.json")
    again = load_outcomes(tmp_path / "outcomes.json")
    assert again == [failed, ok] and isinstance(again[1].loop, Loop)
    page = report(again, "python bench/real_data.py --fast")
    assert "Run 2026-01-02 03:04 UTC; 2 min in all. **1 of 2 passed first try; 1 beat" in page
    assert "1 of 1 served their champion and got a monitor verdict.**" in page
    assert "`params/ci.yaml` layered after each preset (`--fast`" in page
    assert "Diagnostic" not in page and "with-resets" not in page
    assert "| wine | scikit-learn load_wine | multiclass, integer-coded classes" in page
    assert "default parameters otherwise" in report([failed], "python bench/real_data.py")


def test_the_shown_command_names_the_options():
    assert shown_command(None, fast=False, no_loop=False) == "python bench/real_data.py"
    shown = shown_command("wine,diabetes", fast=True, no_loop=True)
    assert shown == "python bench/real_data.py --only wine,diabetes --fast --no-loop"


# --------------------------------------------------------------------------------------------
# The loop's pieces (fast)


def test_the_loop_commands_carry_the_first_run_s_layers(tmp_path):
    preset, ci = tmp_path / "wine.yaml", Path("params/ci.yaml")
    layers = layer_args([preset, ci], ["project.data_dir=/d", "mlflow.store_dir=/m"])
    assert layers == [
        *("--params", str(preset), "--params", "params/ci.yaml"),
        *("-p", "project.data_dir=/d", "-p", "mlflow.store_dir=/m"),
    ]
    monitor = run_all_command(layers, "--only", "monitor")
    assert monitor[0] == sys.executable and monitor[1].endswith("run_all.py")
    assert monitor[2:] == [*layers, "--only", "monitor"]
    replay = replay_command(tmp_path / "wine.csv", 8123, layers)
    assert replay[1:4] == ["-m", "lib.loop.replay", str(tmp_path / "wine.csv")]
    assert replay[4:8] == ["--url", "http://127.0.0.1:8123", "--rows", str(REPLAY_ROWS)]
    assert replay[8:] == [*layers, "--no-progress"] and REPLAY_ROWS == 300


def test_the_server_gets_the_preset_and_overrides_as_its_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("QUIRE__TRAIN__CV_FOLDS", "9")  # the caller's settings never leak in
    monkeypatch.setenv("QUIRE_SERVER_API_KEY", "secret")
    env = server_environment(tmp_path / "wine.yaml", ["project.data_dir=/a/data"], 8123)
    assert env["QUIRE_SERVER_PARAMS_FILE"] == str(tmp_path / "wine.yaml")
    assert (env["QUIRE_SERVER_HOST"], env["QUIRE_SERVER_PORT"]) == ("127.0.0.1", "8123")
    assert env["QUIRE__PROJECT__DATA_DIR"] == "/a/data"
    assert "QUIRE__TRAIN__CV_FOLDS" not in env and "QUIRE_SERVER_API_KEY" not in env
    assert env["OMP_NUM_THREADS"] == "1"


def test_the_server_reads_those_variables_as_the_same_parameters(tmp_path):
    from lib.core.params import folder_overrides, load_params

    preset = tmp_path / "wine.yaml"
    preset.write_text("project: {name: wine}\ndata: {source: w.csv, target: target}\n")
    overrides = folder_overrides(tmp_path)
    env = server_environment(preset, overrides, 8123)
    served = load_params([env["QUIRE_SERVER_PARAMS_FILE"]], env=env)  # as server.main does
    assert served.project.data_dir == str(tmp_path / "data")
    assert served.model_dump() == load_params([preset], overrides).model_dump()


def test_a_free_port_is_one_nothing_listens_on():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # would fail if something held it


def test_stop_group_ends_a_process_group_that_ignores_sigterm():
    ignoring = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", ignoring], start_new_session=True)
    time.sleep(0.5)  # let it install the handler
    started = time.monotonic()
    stop_group(proc, seconds=1)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10


def test_last_error_line_prefers_the_error_over_the_summary():
    out = "ingest  failed  2s\nQuireError: data.id_column 'customer_id' not found\nsee log\n"
    assert last_error_line(out) == "QuireError: data.id_column 'customer_id' not found"


def test_a_refused_replay_is_recorded_by_the_server_s_answer():
    out = (
        "replay to http://127.0.0.1:1/predict: 300 of 300 rows sent in 0.5 s\n"
        "ok: 0 rows; failed: 300 rows (422: 300)\nlatency: p50 6.2 ms\n"
        "  422: invalid_input: row 0, field 'Clutch': expected true or false, got 'Yes'\n"
    )
    assert replay_error(out).startswith("422: invalid_input: row 0, field 'Clutch'")
    assert replay_error("error: no server at http://127.0.0.1:1\n") == (
        "error: no server at http://127.0.0.1:1"
    )


def test_a_run_past_its_timeout_is_stopped_and_recorded_without_a_loop(tmp_path):
    (dataset,) = by_name(["stocks"])
    outcome = run_dataset(dataset, tmp_path, timeout=2)
    assert outcome.exit_code == -1
    assert outcome.seconds < 30
    assert (tmp_path / "run_all.stderr").read_text().endswith("timeout: stopped after 2 s")
    assert outcome.score is None and outcome.decision == "" and outcome.loop is None


# --------------------------------------------------------------------------------------------
# The smallest tables, first try (slow)


LOOPED = "diabetes"  # the regression table: the loop runs for it only, to keep the tests short


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("name", SMOKE)
def test_real_table_passes_first_try_with_its_minimal_preset(name, tmp_path):
    (dataset,) = by_name([name])
    outcome = run_dataset(dataset, tmp_path, fast=True, loop=name == LOOPED, timeout=1100)
    preset = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
    assert set(preset) == {"project", "data"} and set(preset["data"]) == {"source", "target"}
    stderr = (tmp_path / "run_all.stderr").read_text()[-3000:]
    assert outcome.exit_code == 0, f"{outcome.failed_stage}: {outcome.error}\n{stderr}"
    assert outcome.task == dataset.task
    assert outcome.champion == "1", outcome.notes
    assert outcome.decision.startswith("promoted: Version 1 becomes champion"), outcome.decision
    assert outcome.score is not None and outcome.baseline is not None
    assert outcome.beats_baseline, (outcome.metric, outcome.score, outcome.baseline)
    assert outcome.monitor_first == "skipped"  # nothing served yet on a first run
    if name != LOOPED:
        assert outcome.loop is None
        return
    loop = outcome.loop
    assert loop is not None and loop.failed_step is None, (loop.failed_step, loop.error)
    assert loop.replay_exit == 0 and loop.served_rows == min(REPLAY_ROWS, outcome.rows)
    assert loop.monitor_exit == 0 and loop.monitor_status == "ok", loop
    assert loop.verdict and not loop.verdict.startswith("skipped"), loop.verdict
