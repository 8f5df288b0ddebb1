from __future__ import annotations

from pathlib import Path

import pytest

from lib.core.errors import DataValidationError
from lib.core.param_sections import CsvParams
from lib.data.readers import expand_source, penguins_csv, read_table


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


CASES = [
    ("empty.csv", b"", "the file is empty", "empty_file", None),
    ("header.csv", b"a,b,label\n", "header but no data rows", "header_only", None),
    (
        "ragged.csv",
        b"a,b,label\n1,2,0\n3,4,1\n5,6,7,1\n",
        "row 3 (line 4) has 4 fields, the header has 3",
        "ragged_rows",
        3,
    ),
    (
        "semi.csv",
        b"a;b;label\n1;2;0\n",
        "looks ';'-delimited: set data.csv.delimiter: ';'",
        "wrong_delimiter",
        None,
    ),
    (
        "dup.csv",
        b"a,b,a\n1,2,3\n",
        "duplicate column name 'a' (columns 1 and 3)",
        "duplicate_columns",
        None,
    ),
    ("latin.csv", b"a,label\n1,0\n2,caf\xe9\n", "row 2 (line 3) is not valid utf-8", "encoding", 2),
]


@pytest.mark.parametrize(("name", "data", "message", "check", "row"), CASES)
def test_broken_csv_gives_precise_error(tmp_path, name, data, message, check, row):
    path = write(tmp_path / name, data)
    with pytest.raises(DataValidationError) as info:
        read_table(path, CsvParams())
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert info.value.check == check
    assert info.value.row == row


def test_encoding_param_fixes_latin1(tmp_path):
    path = write(tmp_path / "latin.csv", b"a,label\n1,caf\xe9\n")
    frame = read_table(path, CsvParams(encoding="latin-1"))
    assert frame["label"].tolist() == ["café"]


def test_unknown_encoding_name(tmp_path):
    path = write(tmp_path / "x.csv", b"a,b\n1,2\n")
    with pytest.raises(DataValidationError, match="'utf-99' is not a known encoding"):
        read_table(path, CsvParams(encoding="utf-99"))


def test_unreadable_parquet(tmp_path):
    path = write(tmp_path / "broken.parquet", b"PAR1 not really parquet")
    with pytest.raises(DataValidationError, match=r"broken.parquet: cannot read as Parquet"):
        read_table(path, CsvParams())


def test_glob_without_match(tmp_path):
    with pytest.raises(DataValidationError, match=r"no file matches .*nothing-\*.csv"):
        expand_source(str(tmp_path / "nothing-*.csv"))


def test_glob_sorted(tmp_path):
    for name in ("b.csv", "a.csv", "c.txt"):
        write(tmp_path / name, b"x\n1\n")
    assert [p.name for p in expand_source(str(tmp_path / "*.csv"))] == ["a.csv", "b.csv"]


def test_penguins_ships_with_missing_values():
    frame = read_table(penguins_csv(), CsvParams())
    assert len(frame) == 344
    assert frame["sex"].isna().sum() == 11


def test_parquet_category_columns_of_integers_come_back_as_categories(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "grade": pd.Categorical([10, 20, 10]),
            "code": pd.Categorical(["1", "2", "1"]),
            "n": [1, 2, 3],
        }
    )
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    assert pd.read_parquet(tmp_path / "t.parquet")["grade"].dtype == "int64"  # pandas alone
    back = read_table(tmp_path / "t.parquet", CsvParams())
    assert isinstance(back["grade"].dtype, pd.CategoricalDtype)
    assert back["grade"].cat.categories.tolist() == [10, 20]
    assert isinstance(back["code"].dtype, pd.CategoricalDtype)
    assert back["n"].dtype == "int64"
