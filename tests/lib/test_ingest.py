from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.core.atomic import sha256_file
from lib.core.errors import DataValidationError, ParamsError
from lib.core.layout import Layout
from lib.data.ingest import check_gate, run_ingest
from tests.conftest import small_frame, snapshot


def test_generator_ingest_writes_splits_manifest_and_schema(tiny_params):
    result = run_ingest(tiny_params)
    out = Layout.of(tiny_params).processed
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "preprocessor.joblib",
        "schema.json",
        "test.parquet",
        "train.parquet",
        "validation.json",
        "validation.parquet",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 2000
    for name, info in manifest["splits"].items():
        assert sha256_file(out / info["file"]) == info["sha256"], name
    assert manifest["production_batch"].endswith(".parquet")
    assert result.schema.task == "binary"
    check_gate(result)
    raw = tiny_params.project.data_dir + "/raw"
    before = snapshot(Path(raw))
    run_ingest(tiny_params)
    assert snapshot(Path(raw)) == before  # raw data is never modified


def test_splits_are_disjoint_complete_and_stratified(tiny_params):
    run_ingest(tiny_params)
    out = Layout.of(tiny_params).processed
    parts = {n: pd.read_parquet(out / f"{n}.parquet") for n in ("train", "validation", "test")}
    ids = [set(p["customer_id"]) for p in parts.values()]
    assert sum(len(s) for s in ids) == len(set().union(*ids)) == 2000
    rates = {n: p["churned"].mean() for n, p in parts.items()}
    assert max(rates.values()) - min(rates.values()) < 0.02
    assert len(parts["test"]) == 400 and len(parts["validation"]) == 300


def test_time_split_puts_latest_rows_in_test(tmp_path, csv_params):
    path = tmp_path / "t.csv"
    small_frame(90).to_csv(path, index=False)
    params = csv_params(path, "data.date_column=joined", "ingest.split.by_time=true")
    run_ingest(params)
    out = Layout.of(params).processed
    train, val, test = (
        pd.read_parquet(out / f"{n}.parquet") for n in ("train", "validation", "test")
    )
    assert train["joined"].max() < val["joined"].min() <= val["joined"].max() < test["joined"].min()


def test_time_split_without_date_column(tmp_path, csv_params):
    path = tmp_path / "t.csv"
    small_frame().to_csv(path, index=False)
    with pytest.raises(
        ParamsError, match="ingest.split.by_time .*a time split needs data.date_column"
    ):
        run_ingest(csv_params(path, "ingest.split.by_time=true"))


def test_csv_and_parquet_ingest_agree(tmp_path, csv_params):
    frame = small_frame()
    frame.to_csv(tmp_path / "f.csv", index=False)
    frame.to_parquet(tmp_path / "f.parquet", index=False)
    a = run_ingest(csv_params(tmp_path / "f.csv"))
    b = run_ingest(csv_params(tmp_path / "f.parquet", "project.name=fixture2"))
    assert a.schema.features == b.schema.features
    assert a.manifest.splits["test"].sha256 == b.manifest.splits["test"].sha256


def test_glob_of_files_is_one_dataset(tmp_path, csv_params):
    frame = small_frame(90)
    frame.iloc[:45].to_csv(tmp_path / "part-1.csv", index=False)
    frame.iloc[45:].assign(plan="enterprise").to_csv(tmp_path / "part-2.csv", index=False)
    result = run_ingest(csv_params(tmp_path / "part-*.csv"))
    assert result.manifest.rows == 90 and len(result.sources) == 2
    assert "enterprise" in result.schema.column("plan").categories


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _ragged() -> bytes:
    lines = _csv(small_frame()).splitlines(keepends=True)
    lines[5] = lines[5].rstrip(b"\n") + b",extra\n"
    return b"".join(lines)


def _wrong_type() -> bytes:
    frame = small_frame().astype({"charges": object})
    frame.loc[30, "charges"] = "abc"
    return _csv(frame)


BROKEN = {
    "ragged": (_ragged, "row 5 (line 6) has 7 fields, the header has 6"),
    "wrong_type": (_wrong_type, "column 'charges' row 31: 'abc' is not a number"),
    "one_class": (lambda: _csv(small_frame().assign(label=0)), "target 'label' has one class (0)"),
    "missing_column": (
        lambda: _csv(small_frame().drop(columns="plan")),
        "required column 'plan' is missing",
    ),
    "empty": (lambda: b"", "the file is empty"),
}


@pytest.fixture
def ingested(tmp_path, csv_params):
    """A CSV ingested once: (its path, the params, a snapshot of the processed output)."""
    path = tmp_path / "in.csv"
    small_frame().to_csv(path, index=False)
    params = csv_params(path)
    run_ingest(params)
    return path, params, snapshot(Layout.of(params).processed)


def test_a_file_without_the_target_is_a_parameter_problem_and_keeps_output(ingested):
    """The preflight names data.target and where it was set, before anything is written."""
    good, params, before = ingested
    good.write_bytes(_csv(small_frame().drop(columns="label")))
    with pytest.raises(ParamsError) as info:
        run_ingest(params)
    assert "data.target (from -p data.target): no column 'label' in the data" in str(info.value)
    assert f"the data ({good}) has the columns: tenure, charges" in str(info.value)
    assert snapshot(Layout.of(params).processed) == before


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_hard_failure_names_place_and_keeps_previous_output(ingested, case):
    good, params, before = ingested
    make, message = BROKEN[case]
    good.write_bytes(make())
    with pytest.raises(DataValidationError) as info:
        run_ingest(params)
    assert str(good) in str(info.value)
    assert message in str(info.value)
    assert snapshot(Layout.of(params).processed) == before


def test_failure_while_writing_keeps_previous_output(ingested, monkeypatch):
    _, params, before = ingested

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        run_ingest(params)
    assert snapshot(Layout.of(params).processed) == before
    assert not list(Layout.of(params).processed.parent.glob(".*staging"))


def test_later_ingest_is_validated_against_saved_schema(tmp_path, csv_params):
    path = tmp_path / "in.csv"
    small_frame().to_csv(path, index=False)
    params = csv_params(path)
    first = run_ingest(params)
    assert first.schema_origin == "inferred from the data"
    changed = small_frame()
    changed.loc[[3, 4], "plan"] = "platinum"
    changed.loc[5, "charges"] = 10_000.0
    changed["extra"] = 1
    changed.to_csv(path, index=False)
    second = run_ingest(params)
    assert second.schema_origin.startswith("validated against the saved schema")
    report = second.report.set_index(["column", "check"])
    unseen = report.loc[("plan", "unseen_category")]
    assert (unseen["severity"], unseen["count"], unseen["examples"]) == ("soft", 2, ["platinum"])
    assert unseen["rows"] == [4, 5]
    assert report.loc[("charges", "out_of_range"), "rows"] == [6]
    assert report.loc[("extra", "unexpected_column"), "severity"] == "soft"
    assert second.schema == first.schema


def test_saved_schema_requires_its_columns(tmp_path, csv_params):
    path = tmp_path / "in.csv"
    small_frame().to_csv(path, index=False)
    params = csv_params(path)
    run_ingest(params)
    small_frame().drop(columns="plan").to_csv(path, index=False)
    with pytest.raises(
        DataValidationError, match=r"required column 'plan' is missing.*schema_mode: infer"
    ):
        run_ingest(params)


def test_soft_findings_missing_share_and_duplicates(tmp_path, csv_params):
    frame = small_frame(60)
    frame.loc[:29, "charges"] = np.nan
    frame = pd.concat([frame, frame.iloc[:6]], ignore_index=True)
    frame.to_csv(tmp_path / "in.csv", index=False)
    report = run_ingest(csv_params(tmp_path / "in.csv")).report.set_index(["column", "check"])
    assert report.loc[("charges", "missing_values"), "severity"] == "soft"
    assert report.loc[("(all)", "duplicate_rows"), "count"] == 6


def test_rows_without_target_are_dropped_and_reported(tmp_path, csv_params):
    frame = small_frame().astype({"label": float})
    frame.loc[[0, 1], "label"] = np.nan
    frame.to_csv(tmp_path / "in.csv", index=False)
    result = run_ingest(csv_params(tmp_path / "in.csv"))
    assert result.manifest.rows == 58
    row = result.report.set_index(["column", "check"]).loc[("label", "missing_target_dropped")]
    assert (row["count"], row["rows"]) == (2, [1, 2])


def test_penguins_preset(tmp_path):
    from lib.core.params import load_params
    from lib.core.paths import PARAMS_DIR
    from tests.conftest import dirs_overrides

    params = load_params([PARAMS_DIR / "penguins.yaml"], dirs_overrides(tmp_path))
    result = run_ingest(params)
    assert result.schema.task == "multiclass"
    assert result.schema.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert result.schema.column("year").kind == "categorical"
    assert result.manifest.rows == 344
