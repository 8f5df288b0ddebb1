"""Split warnings: a class absent from a split is reported with counts, on a real table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from lib.core.param_sections import SplitParams
from lib.core.params import folder_overrides, load_params
from lib.data.ingest import run_ingest
from lib.data.schema import Schema
from lib.data.split import class_counts, split_findings, split_positions


def wine_by_date() -> pd.DataFrame:
    """scikit-learn's wine table, dated so that every class-2 wine comes first in time."""
    wine = load_wine(as_frame=True).frame
    wine["target"] = wine["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    early = wine[wine["target"] == "barbera"]
    rest = wine[wine["target"] != "barbera"].sample(frac=1.0, random_state=0)
    ordered = pd.concat([early, rest], ignore_index=True)
    ordered["tasted"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(
        np.arange(len(ordered)), unit="D"
    )
    return ordered


def _schema(frame: pd.DataFrame) -> Schema:
    return Schema.model_validate(
        {
            "target": "target",
            "task": "multiclass",
            "date_column": "tasted",
            "classes": sorted(frame["target"].unique()),
            "features": [{"name": "alcohol", "kind": "numeric"}],
        }
    )


def test_time_split_finding_names_the_class_splits_and_counts():
    frame = wine_by_date()
    schema = _schema(frame)
    p = SplitParams(by_time=True)
    positions, _ = split_positions(frame, schema, p, seed=0)
    counts = class_counts(frame, schema, positions)
    assert counts is not None
    assert counts.loc["barbera"].to_dict() == {"train": 48, "validation": 0, "test": 0}
    assert counts.to_numpy().sum() == len(frame)
    findings = split_findings(frame, schema, positions, p)
    assert len(findings) == 1
    f = findings[0]
    assert (f.check, f.severity, f.column, f.count) == (
        "class_missing_in_split",
        "soft",
        "target",
        48,
    )
    assert f.examples == [
        "class 'barbera' has 0 rows in validation and test (train 48, validation 0, test 0); "
        "set ingest.split.by_time: false for a stratified split"
    ]


def test_stratified_split_of_the_same_table_has_no_finding():
    frame = wine_by_date()
    schema = _schema(frame)
    p = SplitParams(by_time=False)
    positions, method = split_positions(frame, schema, p, seed=0)
    assert method == "stratified random split on the target"
    assert split_findings(frame, schema, positions, p) == []


def test_regression_has_no_class_counts():
    frame = pd.DataFrame({"y": np.arange(20.0), "x": np.arange(20.0)})
    schema = Schema.model_validate(
        {"target": "y", "task": "regression", "features": [{"name": "x", "kind": "numeric"}]}
    )
    positions, _ = split_positions(frame, schema, SplitParams(), seed=0)
    assert class_counts(frame, schema, positions) is None
    assert split_findings(frame, schema, positions, SplitParams()) == []


@pytest.mark.parametrize("by_time", [True, False])
def test_ingest_report_shows_the_finding_only_for_the_time_split(tmp_path, by_time):
    path = tmp_path / "wine.csv"
    wine_by_date().to_csv(path, index=False)
    params = load_params(
        overrides=[
            f"data.source={path}",
            "data.target=target",
            "data.id_column=null",
            "data.date_column=tasted",
            f"ingest.split.by_time={str(by_time).lower()}",
            "project.name=wine",
            *folder_overrides(tmp_path),
        ]
    )
    result = run_ingest(params)
    rows = result.report[result.report["check"] == "class_missing_in_split"]
    if by_time:
        assert rows["examples"].tolist() == [
            [
                "class 'barbera' has 0 rows in validation and test (train 48, validation 0, "
                "test 0); set ingest.split.by_time: false for a stratified split"
            ]
        ]
        latest = wine_by_date().tail(36)["target"].value_counts().to_dict()  # 20% of 178 rows
        assert result.manifest.splits["test"].class_counts == latest
        assert "barbera" not in latest
    else:
        assert rows.empty


def test_a_time_split_leaving_a_class_out_of_training_names_counts_and_fixes(tmp_path):
    """The latest rows are the only ones of class 'late': the gate says so, per split, and
    offers the stratified split, naming the user's file (not the stage's staging folder)."""
    import pandas as pd
    import pytest

    from lib.core.errors import DataValidationError
    from lib.core.params import load_params
    from lib.data.ingest import check_gate, run_ingest
    from tests.conftest import dirs_overrides

    n = 120
    frame = pd.DataFrame(
        {
            "x": range(n),
            "when": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "kind": ["a", "b"] * 45 + ["late"] * 30,
        }
    )
    csv = tmp_path / "season.csv"
    frame.to_csv(csv, index=False)
    params = load_params(
        overrides=[
            f"data.source={csv}",
            "data.target=kind",
            "data.date_column=when",
            "ingest.split.by_time=true",
            *dirs_overrides(tmp_path),
        ]
    )
    result = run_ingest(params)
    with pytest.raises(DataValidationError) as info:
        check_gate(result)
    message = str(info.value)
    assert message.startswith(f"{csv}: the split leaves the classes ['late'] of 'kind' without")
    assert "(train 0, validation 6, test 24)" in message
    assert "set ingest.split.by_time: false for a stratified split" in message
