"""How each column of a real table is read: the rule behind every kind, and what is left out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.core.errors import DataValidationError
from lib.core.param_sections import ChecksParams, CsvParams, DataParams, PreprocessingParams
from lib.data.infer import detect_date_format, id_like_name, read_column
from lib.data.preprocess import build_preprocessor
from lib.data.profile import columns_read_table
from lib.data.readers import read_table
from lib.data.schema import Schema
from lib.data.validate import conform, infer_schema
from tests.conftest import small_frame

PATH = Path("data/raw/fixture.csv")
N = 60


def infer(frame: pd.DataFrame, **data: object) -> Schema:
    params = DataParams(target="label", id_column=None, date_column=None, **data)
    return infer_schema(frame, params, ChecksParams(), PATH)


def with_column(name: str, values: object) -> pd.DataFrame:
    return small_frame(N).assign(**{name: values})


def read(values: object, name: str = "x") -> tuple[str | None, str, str | None]:
    reading = read_column(pd.Series(values), name, ChecksParams())
    return reading.kind, reading.rule, reading.format


RNG = np.random.default_rng(7)
CODES = RNG.integers(1, 5, N)  # four codes, each repeated


# --------------------------------------------------------------------------------------------
# Integer codes and pandas category columns


@pytest.mark.parametrize(
    "values",
    [CODES, CODES.astype(float), CODES.astype(str), np.where(np.arange(N) % 7, CODES, np.nan)],
    ids=["int", "whole floats", "strings of integers", "floats with missing"],
)
def test_few_integer_codes_are_categorical_with_the_rule(values):
    kind, rule, _ = read(values)
    assert kind == "categorical"
    assert rule.startswith("integer codes") and "4 distinct values, at most 10 (ingest" in rule


def test_many_integers_and_fractional_floats_stay_numeric():
    assert read(RNG.integers(0, 24, N))[:2] == ("numeric", "numbers")  # 24 levels > 10
    assert read(CODES + 0.5)[:2] == ("numeric", "numbers")  # not whole numbers
    assert read(RNG.normal(size=N))[0] == "numeric"  # unique floats are a measure, not an id


def test_the_code_threshold_is_a_parameter():
    reading = read_column(pd.Series(CODES), "x", ChecksParams(max_integer_codes=3))
    assert (reading.kind, reading.rule) == ("numeric", "numbers")


def test_category_dtype_from_parquet_is_categorical_whatever_its_values(tmp_path):
    frame = small_frame(N).assign(
        grade=pd.Categorical(RNG.choice([10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 100], N))
    )
    file = tmp_path / "t.parquet"
    frame.to_parquet(file, engine="pyarrow", index=False)
    back = read_table(file, CsvParams())
    assert isinstance(back["grade"].dtype, pd.CategoricalDtype)  # as written, not int64
    schema = infer(back)
    col = schema.column("grade")
    assert col.kind == "categorical" and col.rule.startswith("pandas category dtype")
    assert col.categories == sorted(str(v) for v in back["grade"].unique())  # "10", not "10.0"
    assert schema.column("tenure").kind == "numeric"


def test_declared_kind_wins_over_integer_codes():
    schema = infer(with_column("score", CODES), columns={"score": "numeric"})
    col = schema.column("score")
    assert (col.kind, col.declared, col.rule) == ("numeric", True, "declared in data.columns")
    assert col.min == 1.0 and col.max == 4.0


# --------------------------------------------------------------------------------------------
# Booleans


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        (RNG.integers(0, 2, N), "0/1 values"),
        (RNG.integers(0, 2, N).astype(float), "0/1 values"),
        (RNG.choice(["Yes", "No"], N), "yes/no values"),
        (RNG.choice(["y", "N"], N), "yes/no values"),
        (RNG.choice(["TRUE", "false"], N), "true/false values"),
        (RNG.choice(["T", "F"], N), "true/false values"),
    ],
)
def test_booleans(values, rule):
    assert read(values)[:2] == ("boolean", rule)


def test_yes_no_column_conforms_to_ones_and_zeros():
    frame = with_column("active", ["Yes", "no", None] * (N // 3))
    schema = infer(frame)
    conformed, _ = conform(frame, schema, PATH)
    assert conformed["active"].iloc[:3].tolist()[:2] == [1.0, 0.0]
    assert np.isnan(conformed["active"].iloc[2])


# --------------------------------------------------------------------------------------------
# Dates: one detected format, ambiguity reported, the format saved and used again

DAYS = pd.date_range("2021-01-13", periods=N, freq="5D")  # days 13..31 make the order certain


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        (DAYS.strftime("%Y-%m-%d"), "ISO8601"),
        ((DAYS + pd.Timedelta("9h15min")).strftime("%Y-%m-%dT%H:%M:%S"), "ISO8601"),
        (DAYS.strftime("%m/%d/%Y"), "%m/%d/%Y"),
        (DAYS.strftime("%d/%m/%Y"), "%d/%m/%Y"),
        (DAYS.strftime("%d.%m.%Y"), "%d.%m.%Y"),
        ((DAYS + pd.Timedelta("14h30min")).strftime("%m/%d/%Y %H:%M"), "%m/%d/%Y %H:%M"),
        ((DAYS + pd.Timedelta("14h30min")).strftime("%d.%m.%Y %H:%M:%S"), "%d.%m.%Y %H:%M:%S"),
        ((DAYS + pd.Timedelta("14h30min")).strftime("%m/%d/%Y %I:%M %p"), "%m/%d/%Y %I:%M %p"),
    ],
)
def test_dates_in_common_formats(text, fmt):
    kind, rule, found = read(list(text))
    assert (kind, found) == ("datetime", fmt)
    assert rule == f"dates, format {fmt}"


@pytest.mark.parametrize(
    ("layout", "chosen", "first"),
    [("%m/%d/%Y", "%m/%d/%Y", "month"), ("%d.%m.%Y", "%d.%m.%Y", "day")],
)
def test_ambiguous_day_month_order_is_reported(layout, chosen, first):
    firsts = pd.date_range("2021-01-01", periods=12, freq="MS")  # day 1: both readings parse
    found = detect_date_format(pd.Series(list(firsts.strftime(layout)) * 5))
    assert found is not None and (found.format, found.ambiguous) == (chosen, True)
    assert f"ambiguous: day and month are both 12 or less in every value; read {first} first" in (
        found.rule()
    )


def test_day_first_slashes_are_read_day_first_and_parsed_so():
    frame = with_column("joined", list(DAYS.strftime("%d/%m/%Y")))
    schema = infer(frame)
    assert schema.column("joined").format == "%d/%m/%Y"
    conformed, _ = conform(frame, schema, PATH)
    assert conformed["joined"].iloc[0] == pd.Timestamp("2021-01-13")
    # A later file written month-first fails on its first impossible date, naming the format.
    later = frame.assign(joined=list(DAYS.strftime("%m/%d/%Y")))
    with pytest.raises(DataValidationError) as info:
        conform(later, schema, PATH)
    assert str(info.value).startswith(
        "data/raw/fixture.csv: column 'joined' row 1: '01/13/2021' is not a date in format %d/%m/%Y"
    )
    assert "declare the column's format in data.columns" in str(info.value)


def test_an_ambiguous_column_read_the_other_way_when_declared():
    text = list(pd.date_range("2021-01-01", periods=12, freq="MS").strftime("%d/%m/%Y")) * 5
    frame = with_column("joined", text)
    assert infer(frame).column("joined").format == "%m/%d/%Y"  # month first by default
    schema = infer(frame, columns={"joined": {"kind": "datetime", "format": "%d/%m/%Y"}})
    conformed, _ = conform(frame, schema, PATH)
    assert conformed["joined"].iloc[1] == pd.Timestamp("2021-02-01")  # '01/02/2021', day first


def test_the_date_column_gets_a_detected_format():
    frame = with_column("joined", list(DAYS.strftime("%d.%m.%Y")))
    params = DataParams(target="label", id_column=None, date_column="joined")
    col = infer_schema(frame, params, ChecksParams(), PATH).column("joined")
    assert (col.kind, col.format) == ("datetime", "%d.%m.%Y")
    assert col.rule == "data.date_column; dates, format %d.%m.%Y"


# --------------------------------------------------------------------------------------------
# Identifiers, free text, constants: excluded with the reason, kept when declared


def test_identifier_free_text_and_constant_columns_are_excluded_with_reasons():
    frame = small_frame(
        N
    ).assign(
        row=np.arange(1000, 1000 + N)[RNG.permutation(N)],  # a shuffled sequence
        account_id=RNG.permutation(10**6)[:N],  # unique integers named like an id
        ref=[f"R-{i:05d}" for i in RNG.permutation(N)],  # unique strings
        comment=[f"called about the bill, said plan {i} was too expensive" for i in range(N)],
        source="web",
        empty=None,
    )
    schema = infer(frame)
    assert schema.excluded == {
        "row": "identifier: unique per row, a sequence 1000..1059",
        "account_id": "identifier: unique per row, named like an id ('account_id')",
        "ref": "identifier: unique per row",
        "comment": "free text: long, mostly unique strings",
        "source": "constant: one value ('web')",
        "empty": "empty: every value is missing",
    }
    assert schema.names() == ["tenure", "charges", "plan", "paperless", "joined"]
    pre = build_preprocessor(schema, PreprocessingParams())
    used = {c for _, _, cols in pre.transformers for c in cols}
    assert used.isdisjoint(schema.excluded)
    conformed, findings = conform(frame, schema, PATH)
    assert not set(schema.excluded) & set(conformed.columns)
    assert not [f for f in findings if f.check == "unexpected_column"]  # left out quietly


def test_a_saved_index_is_an_identifier_even_in_a_tiny_table(tmp_path):
    small_frame(20).to_csv(tmp_path / "t.csv")  # the index as a first column without a name
    frame = read_table(tmp_path / "t.csv", CsvParams())
    assert frame.columns[0] == ""
    assert infer(frame).excluded == {
        "": "identifier: unique per row, a column without a name (a saved row index)"
    }


def test_tiny_tables_need_an_id_like_name():
    frame = small_frame(20).assign(
        city=[f"city {i}" for i in range(20)], seq=np.arange(20), user_id=np.arange(20)
    )
    schema = infer(frame)
    assert schema.column("city").kind == "categorical"
    assert schema.column("seq").kind == "numeric"
    assert schema.excluded == {
        "user_id": "identifier: unique per row, named like an id ('user_id')"
    }


def test_declared_excluded_column_is_kept_and_dropped_column_is_silent():
    frame = with_column("ref", [f"R-{i:05d}" for i in range(N)]).assign(source="web")
    schema = infer(frame, columns={"ref": "categorical"}, drop=["source"])
    assert schema.column("ref").kind == "categorical" and schema.excluded == {}
    assert "source" not in schema.names()


def test_no_features_left_names_the_excluded_columns():
    frame = pd.DataFrame({"id": range(N), "note": ["same"] * N, "label": [0, 1] * (N // 2)})
    with pytest.raises(DataValidationError) as info:
        infer(frame)
    message = str(info.value)
    assert message.startswith("data/raw/fixture.csv: no feature columns left")
    assert "'id': identifier: unique per row, named like an id ('id')" in message
    assert "'note': constant: one value ('same')" in message
    assert message.endswith("declare a column in data.columns to keep it")
    assert info.value.check == "no_features"


# --------------------------------------------------------------------------------------------
# Saved schemas and the report


def test_schema_saved_before_rules_existed_still_loads(tmp_path):
    schema = infer(small_frame(N))
    old = json.loads(schema.to_json())
    del old["excluded"]
    for col in old["features"]:
        del col["rule"], col["format"]
    (tmp_path / "schema.json").write_text(json.dumps(old), encoding="utf-8")
    loaded = Schema.load(tmp_path / "schema.json")
    assert loaded.excluded == {} and loaded.column("joined").format is None
    conformed, _ = conform(small_frame(N), loaded, PATH)  # ISO dates, as before
    assert conformed["joined"].iloc[0] == pd.Timestamp("2020-01-01")
    assert columns_read_table(loaded).loc["plan", "rule"] == "(not recorded)"


def test_columns_read_table_shows_roles_rules_and_how_to_change_them():
    frame = small_frame(N).assign(code=CODES, ref=[f"R-{i:05d}" for i in range(N)])
    params = DataParams(target="label", id_column=None, date_column=None)
    table = columns_read_table(infer_schema(frame, params, ChecksParams(), PATH))
    assert table.index.tolist() == [
        "label", "tenure", "charges", "plan", "paperless", "joined", "code", "ref"
    ]  # fmt: skip
    assert table.loc["label", "read as"] == "target"
    assert table.loc["code", "read as"] == "categorical"
    assert table.loc["code", "to change"] == "data.columns: {code: numeric}"
    assert table.loc["paperless", "rule"] == "yes/no values"
    assert table.loc["ref", "read as"] == "excluded"
    assert table.loc["ref", "rule"] == "identifier: unique per row"
    assert table.loc["ref", "to change"].startswith("declare it in data.columns to keep it")


# --------------------------------------------------------------------------------------------
# Real tables from installed packages


def test_penguins_year_is_categorical_and_measurements_numeric():
    from lib.data.readers import penguins_csv

    frame = read_table(penguins_csv(), CsvParams())
    params = DataParams(target="species", id_column=None, date_column=None)
    schema = infer_schema(frame, params, ChecksParams(), penguins_csv())
    kinds = {c.name: c.kind for c in schema.features}
    assert kinds["year"] == "categorical"
    assert schema.column("year").categories == ["2007", "2008", "2009"]
    assert kinds["bill_length_mm"] == kinds["body_mass_g"] == "numeric"
    assert kinds["island"] == kinds["sex"] == "categorical"
    assert schema.excluded == {}


def test_anes96_codes_and_sklearn_measurements():
    anes = pytest.importorskip("statsmodels.datasets").anes96.load_pandas().data
    schema = infer_schema(
        anes, DataParams(target="vote", id_column=None, date_column=None), ChecksParams(), PATH
    )
    assert schema.column("educ").kind == "categorical"  # codes 1..7
    assert schema.column("educ").categories == [str(i) for i in range(1, 8)]
    assert schema.column("income").kind == "numeric"  # 24 levels: more than 10
    assert schema.column("age").kind == "numeric"
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    schema = infer_schema(
        wine, DataParams(target="target", id_column=None, date_column=None), ChecksParams(), PATH
    )
    assert {c.kind for c in schema.features} == {"numeric"} and schema.excluded == {}
    assert schema.task == "multiclass"


def test_report_tells_how_to_read_dates_the_other_way():
    frame = small_frame(N).assign(joined=list(DAYS.strftime("%d.%m.%Y")))
    params = DataParams(target="label", id_column=None, date_column=None)
    table = columns_read_table(infer_schema(frame, params, ChecksParams(), PATH))
    assert table.loc["joined", "to change"] == (
        "data.columns: {joined: {kind: datetime, format: '%m.%d.%Y'}}"
    )
    dated = DataParams(target="label", id_column=None, date_column="joined")
    iso = columns_read_table(infer_schema(small_frame(N), dated, ChecksParams(), PATH))
    assert iso.loc["joined", "to change"] == "set data.date_column (null if there is none)"


def test_a_declared_format_that_is_no_format_names_column_and_fix():
    frame = with_column("joined", list(DAYS.strftime("%d/%m/%Y")))
    with pytest.raises(DataValidationError) as info:
        infer(frame, columns={"joined": {"kind": "datetime", "format": "%Q"}})
    assert str(info.value).startswith(
        "data/raw/fixture.csv: column 'joined': date format '%Q' is not usable ('Q' is a bad "
        "directive"
    )
    assert "e.g. '%d/%m/%Y %H:%M', in data.columns" in str(info.value)
    assert (info.value.column, info.value.check) == ("joined", "date_format")


def test_hints_quote_names_that_are_not_plain_words():
    frame = small_frame(N).assign(**{"": range(N), "unit price": CODES})
    table = columns_read_table(infer(frame))
    assert table.loc["(no name)", "to change"].endswith('e.g. data.columns: {"": categorical}')
    assert table.loc["unit price", "to change"] == 'data.columns: {"unit price": numeric}'


def test_an_ambiguous_sample_is_settled_by_the_rest_of_the_column():
    early = pd.date_range("2021-01-01", periods=12, freq="MS").strftime("%d/%m/%Y").tolist()
    late = DAYS.strftime("%d/%m/%Y").tolist()  # days 13 and later: day first for certain
    present = pd.Series(early * 500 + late)  # the first 5,000 values alone are ambiguous
    found = read_column(present, "visit", ChecksParams())
    assert (found.kind, found.format, found.rule) == (
        "datetime",
        "%d/%m/%Y",
        "dates, format %d/%m/%Y",
    )


def test_large_integer_ids_and_zero_padded_numbers():
    big = 2**62 + np.arange(N, dtype=np.int64)  # distinct ints that collide as float64
    assert read(big[RNG.permutation(N)], "order_key")[:2] == (
        None,
        "identifier: unique per row, named like an id ('order_key')",
    )
    padded = [f"{i:06d}" for i in RNG.permutation(N)]
    assert read(padded, "customer_number")[:2] == (
        None,
        "identifier: unique per row (numbers with leading zeros)",
    )
    assert read(RNG.choice(["02139", "10001", "94105"], N))[:2] == (
        "categorical",
        "codes with leading zeros (e.g. postcodes)",
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("id", True), ("ID", True), ("customer_id", True), ("userId", True), ("rowid", True),
        ("order_key", True), ("index", True), ("rownames", True), ("Unnamed: 0", True), ("", True),
        ("width", False), ("monkey", False), ("keyboard", False), ("index_value", False),
        ("identity", False),
    ],
)  # fmt: skip
def test_id_like_names(name, expected):
    assert id_like_name(name) is expected


def test_dates_with_offsets_and_time_zones_become_utc():
    stamps = ["2021-03-15T10:00:00+01:00", "2021-03-15T10:00:00Z", "2021-03-15 10:00", None] * 15
    frame = with_column("seen", stamps)
    schema = infer(frame)
    assert schema.column("seen").format == "ISO8601"
    seen = conform(frame, schema, PATH)[0]["seen"]
    assert seen.dtype == "datetime64[ns]"
    assert seen.iloc[:3].tolist() == [
        pd.Timestamp("2021-03-15 09:00"),
        pd.Timestamp("2021-03-15 10:00"),
    ] * 1 + [pd.Timestamp("2021-03-15 10:00")]
    zoned = frame.assign(
        seen=pd.date_range("2021-03-15 10:00", periods=N, freq="h", tz="Europe/Paris")
    )
    out = conform(zoned, infer(zoned), PATH)[0]["seen"]
    assert out.iloc[0] == pd.Timestamp("2021-03-15 09:00")


def test_a_text_key_of_an_entity_named_like_an_id_is_not_a_feature():
    """palmerpenguins' raw table: ``Individual ID`` names each animal (190 values in 344 rows,
    an animal measured more than once), so it is not unique per row; it is still a key."""
    import palmerpenguins

    raw = next(Path(palmerpenguins.__file__).parent.rglob("penguins-raw.csv"))
    table = pd.read_csv(raw)
    kind, rule, _ = read(table["Individual ID"], "Individual ID")
    assert kind is None and rule == "identifier: named 'Individual ID', 190 distinct values in 344"
    assert read(table["Island"], "Island")[0] == "categorical"
    # a few-valued code named like an id stays a category; a name that only ends in "id" too
    regions = np.array([f"R{i % 5}" for i in range(N)], dtype=object)
    assert read(regions, "region_id")[0] == "categorical"
    many = np.array([f"v{i % 40}" for i in range(N)], dtype=object)  # 40 of 60 distinct
    assert read(many, "user_id")[0] is None and read(many, "grid")[0] == "categorical"
