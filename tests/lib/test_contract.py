"""The input contract's stricter rules: declared non-nullable fields, strictly parsed dates."""

from __future__ import annotations

import numpy as np
import pytest

from lib.data.schema import ColumnSchema, Schema
from lib.serving import contract
from lib.serving.batch import InputError
from lib.serving.contract import check_rows, refuses_null

SCHEMA = Schema(
    target="y",
    task="binary",
    classes=[0, 1],
    features=[
        ColumnSchema(name="age", kind="numeric", nullable=False, declared=True),
        ColumnSchema(name="tenure", kind="numeric", nullable=False),  # inferred: no gaps seen
        ColumnSchema(name="plan", kind="categorical", nullable=False, declared=True),
        ColumnSchema(name="since", kind="datetime"),
        ColumnSchema(name="billed", kind="datetime", format="%m/%d/%Y"),
    ],
)
ROW = {"age": 30, "tenure": 2.0, "plan": "pro", "since": "2024-01-31", "billed": "01/31/2024"}


def _both_ways(monkeypatch, rows, schema=SCHEMA):
    """Check rows through the whole-column path and value by value; both must agree."""
    outcomes = []
    for fast in (True, False):
        with monkeypatch.context() as m:
            if not fast:
                m.setattr(contract, "_whole_column", lambda *args: None)
            try:
                outcomes.append(check_rows(rows, schema))
            except InputError as exc:
                outcomes.append(exc)
    return outcomes


def test_a_null_in_a_field_declared_non_nullable_is_refused_naming_row_and_field(monkeypatch):
    rows = [dict(ROW) for _ in range(300)]
    rows[201] = {**ROW, "age": None}
    rows[250] = {**ROW, "plan": None}
    for outcome in _both_ways(monkeypatch, rows):
        assert isinstance(outcome, InputError)
        found = [(p.row, p.field) for p in outcome.problems]
        assert found == [(201, "age"), (250, "plan")]
        assert outcome.problems[0].reason == (
            "null is not allowed: the column is declared nullable: false in data.columns; "
            "send a value, or declare nullable: true"
        )


def test_nan_read_as_missing_is_a_null_too():
    rows = [{**ROW, "age": float("nan")}]
    with pytest.raises(InputError, match=r"row 0, field 'age': null is not allowed"):
        check_rows(rows, SCHEMA, nan_missing=True)


def test_an_inferred_non_nullable_field_still_takes_null_for_the_imputer(monkeypatch):
    rows = [{**ROW, "tenure": None, "since": None}]
    for outcome in _both_ways(monkeypatch, rows):
        assert np.isnan(outcome.columns["tenure"][0])
    assert refuses_null(SCHEMA.column("age")) and not refuses_null(SCHEMA.column("tenure"))
    assert refuses_null(SCHEMA.column("tenure"), inferred=True)


@pytest.mark.parametrize("word", ["now", "today", "tomorrow", "yesterday", "NaT", "", "2024"])
@pytest.mark.parametrize("field", ["since", "billed"])
def test_relative_and_partial_dates_are_refused_with_an_example(monkeypatch, word, field):
    rows = [dict(ROW) for _ in range(50)]
    rows[33] = {**ROW, field: word}
    example = (
        "an ISO date such as 2024-01-31"
        if field == "since"
        else "an ISO date or one in format %m/%d/%Y, such as 2024-01-31 or 01/31/2024"
    )
    for outcome in _both_ways(monkeypatch, rows):
        assert isinstance(outcome, InputError), outcome
        (problem,) = outcome.problems
        assert (problem.row, problem.field) == (33, field)
        assert f"expected {example}" in problem.reason
        assert repr(word) in problem.reason


@pytest.mark.parametrize(
    ("since", "billed", "expected"),
    [
        ("2024-01-31", "01/31/2024", "2024-01-31T00:00"),
        ("2024-01-31T10:30:00", "2024-01-31", "2024-01-31T10:30"),  # ISO in a formatted column
        ("2024-01-31T10:30:00+02:00", "2024-01-31T08:30:00Z", "2024-01-31T08:30"),
        ("2024-01-31 10:30:00.250", " 01/31/2024 ", "2024-01-31T10:30:00.250"),
    ],
)
def test_iso_dates_and_the_columns_own_format_are_accepted_both_ways(
    monkeypatch, since, billed, expected
):
    rows = [{**ROW, "since": since, "billed": billed}] * 3
    fast, slow = _both_ways(monkeypatch, rows)
    assert fast.columns["since"][0] == np.datetime64(expected)
    assert np.array_equal(fast.columns["since"], slow.columns["since"])
    assert np.array_equal(fast.columns["billed"], slow.columns["billed"])
    assert fast.columns["billed"].dtype == np.dtype("datetime64[ns]")


def test_a_format_only_the_column_declares_is_refused_elsewhere():
    with pytest.raises(InputError) as caught:
        check_rows([{**ROW, "since": "01/31/2024"}], SCHEMA)
    assert caught.value.problems[0].field == "since"


def test_a_few_rows_and_many_rows_are_checked_alike():
    """Up to 16 rows go value by value (single-row serving speed); the answer is the same."""
    schema = SCHEMA.model_copy(
        update={
            "features": [
                *SCHEMA.features[:2],
                ColumnSchema(name="plan", kind="categorical", categories=["pro", "free"]),
                *SCHEMA.features[3:],
            ]
        }
    )
    rows = [
        ROW,
        {**ROW, "plan": "gold", "since": "2024-02-01T10:00:00+02:00", "billed": None},
        {**ROW, "plan": None, "since": None, "billed": "12/31/2023"},
    ]
    few = check_rows(rows, schema)
    many = check_rows(rows * 10, schema)
    assert few.unknown == [[], ["plan"], []] == many.unknown[:3]
    for name, values in few.columns.items():
        assert values.dtype == many.columns[name].dtype, name
        np.testing.assert_array_equal(values, many.columns[name][:3], err_msg=name)
    assert few.columns["since"][1] == np.datetime64("2024-02-01T08:00:00")
