"""The server's input contract (lib/serving/contract.py): whole-column conversion equals value by value."""

from __future__ import annotations

import numpy as np
import pytest

from lib.core.errors import DataValidationError
from lib.data.schema import ColumnSchema, Schema
from lib.serving import contract as serving
from lib.serving.batch import InputError
from lib.serving.contract import check_rows, probe_rows

SCHEMA = Schema(
    target="y",
    task="binary",
    classes=[0, 1],
    features=[
        ColumnSchema(name="x", kind="numeric", min=0, max=10),
        ColumnSchema(name="flag", kind="boolean"),
        ColumnSchema(name="plan", kind="categorical", categories=["basic", "pro"]),
        ColumnSchema(name="since", kind="datetime"),
    ],
)


def value_by_value(monkeypatch, rows):
    with monkeypatch.context() as m:
        m.setattr(serving, "_whole_column", lambda *args: None)
        return check_rows(rows, SCHEMA)


def same(a, b):
    assert a.unknown == b.unknown
    for name in a.columns:
        assert a.columns[name].dtype == b.columns[name].dtype, name
        if a.columns[name].dtype == object:
            assert a.columns[name].tolist() == b.columns[name].tolist(), name
        else:
            assert np.array_equal(a.columns[name], b.columns[name], equal_nan=True), name


@pytest.mark.parametrize(
    "dates",
    [
        ["2024-01-31", None, "1969-12-31", "2262-04-10"],
        ["2024-01-31T10:30:00", "2024-02-29T23:59:59.123456", None, "2000-01-01"],
        ["2024-01-31T10:30:00+02:00", "2024-01-31T10:30:00Z", None, "2024-06-01T00:00:00-05:00"],
        ["2024-01-31", "2024-01-31 10:30", "2024-01-31T10:30:00.5", None],
        ["2024-01-31T10:30:00+02:00", "2024-01-31", None, "2024-01-31"],  # mixed offsets
    ],
)
def test_whole_column_equals_value_by_value(monkeypatch, dates):
    rows = [
        {"x": x, "flag": f, "plan": p, "since": d}
        for x, f, p, d in zip(
            [1, 2.5, None, 1e300],
            [True, None, False, True],
            ["basic", None, "gold", "pro"],
            dates,
            strict=True,
        )
    ]
    same(check_rows(rows, SCHEMA), value_by_value(monkeypatch, rows))


def test_probe_rows_agree_both_ways(monkeypatch):
    rows = probe_rows(SCHEMA, n=300)
    batch = check_rows(rows, SCHEMA)
    same(batch, value_by_value(monkeypatch, rows))
    assert np.isnan(batch.columns["x"]).any() and batch.unknown.count(["plan"]) > 0


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"x": float("nan")}, "x", "NaN and Infinity"),
        ({"x": float("inf")}, "x", "NaN and Infinity"),
        ({"x": True}, "x", "expected a number"),
        ({"flag": "maybe"}, "flag", "expected true or false"),
        ({"since": "2263-01-01"}, "since", "dates must fall between"),
        ({"plan": ["basic"]}, "plan", "expected a string"),
    ],
)
def test_a_bad_value_in_a_large_batch_is_named(change, field, reason):
    rows = [{"x": 1.0, "flag": True, "plan": "pro", "since": "2024-01-01"} for _ in range(500)]
    rows[321] = {**rows[321], **change}
    with pytest.raises(InputError) as caught:
        check_rows(rows, SCHEMA)
    (problem,) = caught.value.problems
    assert (problem.row, problem.field) == (321, field) and reason in problem.reason


def test_missing_and_extra_fields_are_named():
    rows = [{"x": 1.0, "flag": True, "plan": "pro", "since": None} for _ in range(50)]
    rows[7] = {"x": 1.0, "flag": True, "since": None}
    rows[9] = {**rows[9], "colour": "blue"}
    with pytest.raises(InputError) as caught:
        check_rows(rows, SCHEMA)
    found = {(p.row, p.field, p.reason.split(";")[0]) for p in caught.value.problems}
    assert found == {(7, "plan", "missing field"), (9, "colour", "unknown field")}


def test_input_errors_are_data_validation_errors_naming_the_check():
    rows = [{"x": 1.0, "flag": True, "plan": "pro", "since": None}] * 3
    with pytest.raises(DataValidationError) as caught:
        check_rows(rows, SCHEMA, max_rows=2)
    assert isinstance(caught.value, InputError)
    assert (caught.value.check, caught.value.column, caught.value.path) == (
        "batch_too_large",
        None,
        None,
    )
    assert caught.value.message == (
        "row 2, field '': 3 rows exceed the limit of 2 per request; split the batch"
    )
    with pytest.raises(DataValidationError) as caught:
        check_rows([{**rows[0], "x": "many"}], SCHEMA)
    assert (caught.value.check, caught.value.column) == ("invalid_input", "x")


def test_the_id_and_excluded_columns_are_accepted_kept_apart_and_never_features():
    schema = Schema(
        **{**SCHEMA.model_dump(), "id_column": "cid", "excluded": {"notes": "free text"}}
    )
    rows = [
        {"x": 1.0, "flag": True, "plan": "pro", "since": "2024-01-31", "cid": "a-1", "notes": "hi"},
        {"x": 2.0, "flag": False, "plan": "basic", "since": None, "notes": None},
    ]
    batch = check_rows(rows, schema)  # extra fields are rejected, these two are not
    assert list(batch.columns) == ["x", "flag", "plan", "since"]
    assert batch.ids == ["a-1", None]
    assert (
        check_rows([{k: v for k, v in r.items() if k != "cid"} for r in rows], schema).ids is None
    )
    with pytest.raises(InputError, match=r"row 0, field 'other': unknown field; remove it"):
        check_rows([{**rows[0], "other": 1}], schema)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([1], "expected a string or an integer id, got list"),
        (float("nan"), "expected a string or an integer id, got float"),
        ("é" * 201, "an id has at most 200 characters, got 201"),
        (-(10**18), "an integer id must be below 10^18 in size; send a longer one as a string"),
    ],
)
def test_a_bad_id_names_its_row_and_field(value, reason):
    schema = SCHEMA.model_copy(update={"id_column": "cid"})
    row = {"x": 1.0, "flag": True, "plan": "pro", "since": None}
    with pytest.raises(InputError) as caught:
        check_rows([{**row, "cid": 1}, {**row, "cid": value}], schema)
    assert isinstance(caught.value, DataValidationError)
    assert str(caught.value).startswith(f"row 1, field 'cid': {reason}")
    assert caught.value.code == "invalid_input"


def test_batches_keep_their_ids_when_stacked():
    schema = SCHEMA.model_copy(update={"id_column": "cid"})
    row = {"x": 1.0, "flag": True, "plan": "pro", "since": None}
    with_ids = check_rows([{**row, "cid": 7}], schema)
    without = check_rows([row, row], schema)
    stacked = type(with_ids).concat([without, with_ids])
    assert stacked.ids == [None, None, 7] and len(stacked) == 3
    assert type(with_ids).concat([without, without]).ids is None


def test_booleans_accept_the_words_ingest_reads():
    """A row of the training file is a valid request as it is: 'Yes' in a yes/no column (as
    palmerpenguins' raw 'Clutch Completion') is true, as ingest read it."""
    words = ["Yes", "no", "TRUE", "f", "1", 0, True]
    rows = [{"x": 1.0, "flag": w, "plan": "pro", "since": None} for w in words]
    batch = check_rows(rows, SCHEMA)
    assert batch.columns["flag"].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    with pytest.raises(InputError) as info:
        check_rows([{"x": 1.0, "flag": "perhaps", "plan": "pro", "since": None}], SCHEMA)
    assert "expected true or false (or yes/no, 1/0), got 'perhaps'" in str(info.value.problems)
