"""Labels joined to the prediction log by the id column (a label file, or posted feedback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.core.contracts import predlog
from lib.core.errors import DataValidationError
from lib.core.layout import Layout
from lib.core.params import Params, load_params
from lib.data import feedback
from lib.data.schema import ColumnSchema, Schema
from lib.monitoring import inputs
from tests.conftest import dirs_overrides

ID = "customer_id"
SCHEMA = Schema(
    target="churned",
    task="binary",
    classes=[0, 1],
    id_column=ID,
    features=[ColumnSchema(name="x", kind="numeric")],
)


def params_for(root: Path, *extra: str) -> Params:
    return load_params(overrides=[*dirs_overrides(root), "monitor.current=log", *extra])


def write_part(folder: Path, name: str, request_id: str, x: list[float], ids=None, **kw) -> None:
    """One log file as the server writes it; ``ids=None`` with no ``id_column``: an old log."""
    n = len(x)
    table = predlog.log_columns(
        {"x": np.array(x)},
        request_id=request_id,
        model_version="1",
        prediction=np.zeros(n, dtype=int),
        proba=np.full((n, 2), 0.5),
        classes=[0, 1],
        now=pd.Timestamp("2026-11-01") + pd.Timedelta(minutes=len(name)),
        ids=ids,
        **kw,
    )
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(table).to_parquet(folder / f"part-{name}.parquet", index=False)


@pytest.fixture
def logged(tmp_path: Path) -> Params:
    """A log: an old file without ids, then two requests with ids (C-2 served twice)."""
    params = params_for(tmp_path)
    folder = Layout.of(params).predictions
    write_part(folder, "1", "old", [0.0, 1.0])  # written before ids were logged
    write_part(folder, "22", "a", [2.0, 3.0], ids=["C-1", "C-2"], id_column=ID)
    write_part(folder, "333", "b", [4.0, 5.0], ids=["C-2", None], id_column=ID)
    return params


def current_labels(params: Params) -> list:
    current = inputs.load_current(params, SCHEMA, "quire-churn", scorer=None)  # type: ignore[arg-type]
    assert current.frame["x"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert current.y is not None
    return [None if pd.isna(v) else int(v) for v in current.y]


def test_a_label_file_with_the_id_column_joins_the_log_by_id(logged, tmp_path):
    log = predlog.read_log(Layout.of(logged).predictions, by_time=True)
    assert log[ID].tolist() == [None, None, "C-1", "C-2", "C-2", None]  # old rows read as null
    labels = tmp_path / "labels.csv"
    pd.DataFrame({ID: ["C-2", "C-1", "C-9"], "churned": [1, 0, 1]}).to_csv(labels, index=False)
    params = params_for(tmp_path, f"monitor.labels={labels}")
    assert current_labels(params) == [None, None, 0, 1, 1, None]


def test_ids_join_as_text_whatever_type_the_label_file_gives_them(tmp_path):
    params = params_for(tmp_path)
    write_part(Layout.of(params).predictions, "1", "a", [0.0, 1.0], ids=[17, "18"], id_column=ID)
    labels = tmp_path / "labels.csv"
    pd.DataFrame({ID: [17.0, 18.0], "churned": [1, 0]}).to_csv(labels, index=False)  # "17.0"
    params = params_for(tmp_path, f"monitor.labels={labels}")
    current = inputs.load_current(params, SCHEMA, "quire-churn", scorer=None)  # type: ignore[arg-type]
    assert current.y is not None and current.y.tolist() == [1, 0]


def test_a_label_file_without_the_id_column_still_joins_by_request_and_row(logged, tmp_path):
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["old", "b"], "row": [1, 0], "churned": [1, 0]}).to_csv(
        labels, index=False
    )
    assert current_labels(params_for(tmp_path, f"monitor.labels={labels}")) == [
        None, 1, None, None, 0, None,
    ]  # fmt: skip


def test_feedback_by_id_and_by_request_join_the_log_request_first(logged, tmp_path):
    folder = Layout.of(logged).feedback
    feedback.save_labels(
        folder,
        pd.DataFrame(
            {"request_id": [None, "b", None], "row": [0, 0, 0], ID: ["C-2", None, "C-1"],
             "churned": [1, 0, 1]}
        ),
    )  # fmt: skip
    assert current_labels(params_for(tmp_path, "monitor.labels=feedback")) == [
        None, None, 1, 1, 0, None,
    ]  # fmt: skip
    labels = feedback.load_labels(folder, "churned", logged.data.csv, ID)
    log = predlog.read_log(Layout.of(logged).predictions, by_time=True)
    rows = feedback.labelled_rows(log, labels, "churned", ID)
    # by id: the last logged row of C-2 (request b, whose label by request wins: 0) and C-1
    assert sorted(zip(rows[ID], rows["x"], rows["churned"], strict=True)) == [
        ("C-1", 2.0, 1),
        ("C-2", 4.0, 0),
    ]
    assert list(rows.columns) == [ID, "x", "churned"]
    assert feedback.unmatched_ids(Layout.of(logged).predictions, ID, ["C-1", "C-7", "C-7"]) == [
        "C-7"
    ]


def test_a_label_file_with_neither_key_names_the_file_and_the_fix(logged, tmp_path):
    folder = Layout.of(logged).feedback
    folder.mkdir(parents=True)
    pd.DataFrame({"who": ["C-1"], "churned": [1]}).to_csv(folder / "bad.csv", index=False)
    with pytest.raises(DataValidationError) as caught:
        feedback.load_labels(folder, "churned", logged.data.csv, ID)
    assert str(caught.value).startswith(
        f"{folder / 'bad.csv'}: label files need column request_id or customer_id (and "
        "optionally row) and 'churned'; missing ['request_id or customer_id']"
    )
    assert caught.value.check == "label_columns"
