"""Read CSV and Parquet sources, turning every way a file can be broken into a precise error.

The fast path is pandas with the pyarrow CSV engine. When it fails, the file is re-scanned with
the standard library (slow, but only on the error path) to find the row and column at fault.
"""

from __future__ import annotations

import codecs
import csv
import glob
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from lib.core import frames
from lib.core.errors import DataValidationError
from lib.core.param_sections import CsvParams
from lib.core.paths import resolve

_CANDIDATE_DELIMITERS = [",", ";", "\t", "|"]
_SNIFF_BYTES = 64 * 1024
# The same missing-value markers as pandas.read_csv.
_NULLS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND"]
_NULLS += ["1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


def penguins_csv() -> Path:
    """Return the CSV that the ``palmerpenguins`` package ships."""
    import palmerpenguins

    return Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"


def expand_source(source: str) -> list[Path]:
    """Return the files a path or glob names, sorted.

    Parameters
    ----------
    source
        A path or glob, relative to the project root or absolute.

    Returns
    -------
    list of Path
        Existing files.

    Raises
    ------
    DataValidationError
        When nothing matches.
    """
    pattern = str(resolve(source))
    matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True) if Path(m).is_file())
    if not matches:
        raise DataValidationError(
            f"data.source {source!r}: no file matches {pattern}; check the path or glob, or use "
            "'generator' for the built-in sample data",
            path=pattern,
            check="missing_file",
        )
    return matches


def read_table(
    path: Path, csv_params: CsvParams, rename: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Read one CSV or Parquet file (chosen by suffix: .parquet/.pq, else CSV).

    Parameters
    ----------
    path
        The file.
    csv_params
        Delimiter and encoding for CSV files.
    rename
        ``data.rename``: the file's column -> the project's name for it (columns the file lacks
        are skipped: a labels file holds only some).

    Returns
    -------
    pandas.DataFrame
        The table, with at least one row and unique column names.

    Raises
    ------
    DataValidationError
        Naming the file and, where it applies, the row and column.
    """
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame = _read_parquet(path)
    else:
        frame = _read_csv(path, csv_params)
    if len(frame) == 0:
        raise DataValidationError(
            f"{path}: the file has a header but no data rows; supply a file with data",
            path=path,
            check="header_only",
        )
    return _renamed(frame, rename or {}, path)


def _renamed(frame: pd.DataFrame, rename: Mapping[str, str], path: Path) -> pd.DataFrame:
    """Apply ``data.rename`` to the columns the file has; a new name may not be taken."""
    present = {old: new for old, new in rename.items() if old in frame.columns and old != new}
    if not present:
        return frame
    taken = [new for new in present.values() if new in frame.columns and new not in present]
    if taken:
        raise DataValidationError(
            f"{path}: data.rename renames a column to {taken[0]!r}, which the file already has; "
            "choose another new name in data.rename",
            path=path,
            column=taken[0],
            check="rename",
        )
    return frame.rename(columns=present)


def _read_parquet(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise _empty(path)
    try:
        frame = frames.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataValidationError(
            f"{path}: cannot read as Parquet ({str(exc).splitlines()[0]}); check that the file is "
            "a complete Parquet file, or rename it to .csv if it is text",
            path=path,
            check="unreadable",
        ) from None
    _check_unique(path, [str(c) for c in frame.columns])
    return _restore_categories(path, frame)


def _restore_categories(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Return the frame with pandas ``category`` columns as written, numeric ones included.

    Parquet keeps dictionary encoding only for text: a ``category`` column of integer codes comes
    back as plain integers, though the file's pandas metadata still says ``categorical``.
    """
    try:
        written = pq.read_schema(path).pandas_metadata or {}
    except (pa.ArrowException, OSError, ValueError):
        return frame
    wanted = [
        c["name"]
        for c in written.get("columns", [])
        if c.get("pandas_type") == "categorical"
        and c.get("name") in frame.columns
        and not isinstance(frame[c["name"]].dtype, pd.CategoricalDtype)
    ]
    return frame.astype(dict.fromkeys(wanted, "category")) if wanted else frame


def _empty(path: Path) -> DataValidationError:
    return DataValidationError(
        f"{path}: the file is empty; supply a file with a header row and data",
        path=path,
        check="empty_file",
    )


def _check_unique(path: Path, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise DataValidationError(
                f"{path}: duplicate column name {name!r} (columns {seen[name]} and {position}); "
                "rename one of them",
                path=path,
                column=name,
                check="duplicate_columns",
            )
        seen[name] = position


def _header(path: Path, csv_params: CsvParams) -> list[str]:
    """Decode and parse the header row, checking encoding, delimiter and duplicate names."""
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head.strip():
        raise _empty(path)
    try:
        codecs.lookup(csv_params.encoding)
    except LookupError:
        raise DataValidationError(
            f"data.csv.encoding {csv_params.encoding!r} is not a known encoding; use e.g. "
            "utf-8 or latin-1",
            path=path,
            check="encoding",
        ) from None
    text = head.decode(csv_params.encoding, errors="replace").lstrip("\ufeff")
    first = text.splitlines()[0] if text.splitlines() else ""
    names = next(csv.reader([first], delimiter=csv_params.delimiter), [])
    if len(names) <= 1:
        other = [d for d in _CANDIDATE_DELIMITERS if d != csv_params.delimiter and d in first]
        if other:
            shown = "\\t" if other[0] == "\t" else other[0]
            raise DataValidationError(
                f"{path}: the header has one column with delimiter "
                f"{csv_params.delimiter!r} but contains {other[0]!r}; the file looks "
                f"{shown!r}-delimited: set data.csv.delimiter: {other[0]!r}",
                path=path,
                check="wrong_delimiter",
            )
    _check_unique(path, names)
    return names


def _read_csv(path: Path, csv_params: CsvParams) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise _empty(path)
    names = _header(path, csv_params)
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(encoding=csv_params.encoding),
            parse_options=pa_csv.ParseOptions(delimiter=csv_params.delimiter),
            convert_options=pa_csv.ConvertOptions(null_values=_NULLS, strings_can_be_null=True),
        )
    except (pa.ArrowException, ValueError, UnicodeDecodeError) as exc:
        raise _locate_csv_error(path, csv_params, len(names), exc) from None
    # pyarrow reads text that is not valid in the encoding as binary instead of failing.
    if any(pa.types.is_binary(field.type) for field in table.schema):
        raise _locate_csv_error(path, csv_params, len(names), ValueError("undecodable text"))
    # self_destruct frees Arrow buffers as columns convert: peak memory stays near one copy.
    return frames.to_frame(table, date_as_object=False)


def _locate_csv_error(
    path: Path, csv_params: CsvParams, width: int, exc: Exception
) -> DataValidationError:
    """Re-scan the file to find where it is broken (only runs on the error path)."""
    decoder = codecs.getincrementaldecoder(csv_params.encoding)()
    line_no = 0
    with path.open("rb") as fh:
        for raw in fh:
            line_no += 1
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as err:
                return DataValidationError(
                    f"{path}: row {line_no - 1:,} (line {line_no:,}) is not valid "
                    f"{csv_params.encoding} ({err.reason} at byte {err.start}); set "
                    "data.csv.encoding to the file's encoding (e.g. latin-1) or re-save it as "
                    "UTF-8",
                    path=path,
                    row=line_no - 1,
                    check="encoding",
                )
    with path.open(encoding=csv_params.encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=csv_params.delimiter)
        for row_no, fields in enumerate(reader):
            if row_no == 0 or not fields:
                continue
            if len(fields) != width:
                line = reader.line_num
                return DataValidationError(
                    f"{path}: row {row_no:,} (line {line:,}) has {len(fields)} fields, the header "
                    f"has {width}; fix that row (a stray delimiter or a missing quote) or check "
                    "data.csv.delimiter",
                    path=path,
                    row=row_no,
                    check="ragged_rows",
                )
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DataValidationError(
        f"{path}: cannot parse as CSV ({first}); check data.csv.delimiter and data.csv.encoding",
        path=path,
        check="unreadable",
    )
