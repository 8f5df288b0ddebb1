"""Real tables, first try: the corpus's harness, and its smallest tables through run_all.

The slow tests run the smallest binary, regression and multiclass tables of
``bench/real_data_corpus.py`` through ``run_all.py`` with the minimal preset a new user writes
(``project.name``, ``data.source``, ``data.target``): exit 0, a champion registered, and a test
metric better than the simplest baseline. The fast tests check the harness itself.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import palmerpenguins
import pandas as pd
import plotly
import pytest
import yaml
from sklearn.datasets import load_diabetes

from bench.real_data import RESETS, baseline, last_error_line, main, run_dataset
from bench.real_data_corpus import CORPUS, SMOKE, by_name
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
    assert len(frame) >= 100
    preset = dataset.preset(source)
    assert preset["project"] == {"name": dataset.name}
    assert preset["data"]["source"] == str(source)
    assert preset["data"]["target"] == dataset.target
    # only what the table needs: nothing that names the generator's columns or resets a default
    allowed = {"project": {"name"}, "data": {"source", "target", "date_column", "task"}}
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
    ok.baseline, ok.verdict, ok.alerts = 0.18, "no drift", 2
    table = results_table([failed, ok]).splitlines()
    assert table[2].startswith(
        "| wine | multiclass | 178 | 1 | ingest: data/raw/wine.csv: bad \\| column | - |"
    )
    assert "f1_macro 0.970 vs 0.180 ✓" in table[3] and "no drift (2 alerts)" in table[3]


def test_the_page_shows_the_minimal_run_then_the_diagnostic_and_survives_json(tmp_path):
    (dataset,) = by_name(["wine"])
    failed = Outcome(dataset, 178, 1, 20.0, failed_stage="ingest", error="no customer_id")
    ok = Outcome(dataset, 178, 0, 100.0, task="multiclass", metric="f1_macro", score=0.9)
    ok.baseline, ok.finished_at = 0.2, "2026-01-02 03:04 UTC"
    save_outcomes([ok], tmp_path / "resets.json")
    (again,) = load_outcomes(tmp_path / "resets.json")
    assert again == ok
    page = report([failed], "python bench/real_data.py", [again], RESETS)
    minimal, diagnostic = page.split("## Diagnostic")
    assert "**0 of 1 passed first try; 0 beat the simple baseline.**" in minimal
    assert "ingest: no customer_id" in minimal
    assert "Run 2026-01-02 03:04 UTC; 2 min in all. **1 of 1 passed first try; 1 beat" in diagnostic
    assert "adds `data.id_column=null`, `evaluate.segments=[]`" in diagnostic
    assert "| wine | scikit-learn load_wine | multiclass, integer-coded classes" in diagnostic


def test_last_error_line_prefers_the_error_over_the_summary():
    out = "ingest  failed  2s\nQuireError: data.id_column 'customer_id' not found\nsee log\n"
    assert last_error_line(out) == "QuireError: data.id_column 'customer_id' not found"


def test_a_run_past_its_timeout_is_stopped_and_recorded(tmp_path):
    (dataset,) = by_name(["stocks"])
    outcome = run_dataset(dataset, tmp_path, timeout=2)
    assert outcome.exit_code == -1
    assert outcome.seconds < 30
    assert (tmp_path / "run_all.stderr").read_text().endswith("timeout: stopped after 2 s")
    assert outcome.score is None and outcome.decision == ""


# --------------------------------------------------------------------------------------------
# The smallest tables, first try (slow)


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("name", SMOKE)
def test_real_table_passes_first_try_with_its_minimal_preset(name, tmp_path):
    (dataset,) = by_name([name])
    outcome = run_dataset(dataset, tmp_path, timeout=1100)
    preset = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
    assert set(preset) == {"project", "data"} and set(preset["data"]) == {"source", "target"}
    stderr = (tmp_path / "run_all.stderr").read_text()[-3000:]
    assert outcome.exit_code == 0, f"{outcome.failed_stage}: {outcome.error}\n{stderr}"
    assert outcome.task == dataset.task
    assert "champion v1" in outcome.notes, outcome.notes
    assert outcome.decision.startswith("promoted: Version 1 becomes champion"), outcome.decision
    assert outcome.score is not None and outcome.baseline is not None
    assert outcome.beats_baseline, (outcome.metric, outcome.score, outcome.baseline)
    assert outcome.verdict, "the monitor stage wrote no verdict"
