"""How each column of a new table is read: its kind, the rule that chose it, or why it is left out.

One function per question a real file raises: are these integers category codes, are these
strings booleans or dates (and in which format), is this column an identifier, free text or a
constant. Every answer carries a rule in words, shown in the ingest report and saved in the schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib.core.param_sections import ChecksParams, ColumnKind

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})
_BOOLEAN_VOCABULARIES = (
    ("0/1 values", {"0", "1", "0.0", "1.0"}),
    ("yes/no values", {"yes", "no", "y", "n"}),
    ("true/false values", {"true", "false", "t", "f"}),
)
ID_MIN_ROWS = 50  # below this, a column unique per row is only an identifier when named like one
FREE_TEXT_MIN_LENGTH = 30  # mean characters per value
FREE_TEXT_MIN_WORDS = 5  # mean words per value
FREE_TEXT_MIN_DISTINCT = 0.5  # share of distinct values among the present ones
DATE_MIN_SHARE = 0.95  # share of a sample that must parse in one format
_SAMPLE = 5000
# id, key, index, rownames, "Unnamed: 0" (pandas' name for a saved index), *id, *_key
_ID_NAME = re.compile(r"^(id|key|index|rownames|unnamed: ?0)$|id$|_key$", re.IGNORECASE)
# "ID" or "key" as a word at the end of the name: "Individual ID", "customer_id", "userID"
_ID_WORD = re.compile(r"(?i:(^|[\s_.\-])(id|key)$)|[a-z]ID$")
ID_DISTINCT_SHARE = 0.5  # a text column named with an ID word and more distinct values than
# this share of its present ones is a key of some entity (an animal, a customer), not a category
_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")
_DATE_LIKE = re.compile(
    r"^\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}( \d{1,2}:\d{2}(:\d{2})?( ?[AaPp][Mm])?)?$"
)
_TIMES = ("", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")
# (month-first, day-first) pairs per separator, the preferred reading of ambiguous dates first.
_DATE_ORDERS = {
    "/": (("%m/%d/%Y", "%d/%m/%Y"), ("%m/%d/%y", "%d/%m/%y")),
    ".": (("%d.%m.%Y", "%m.%d.%Y"), ("%d.%m.%y", "%m.%d.%y")),
    "-": (("%d-%m-%Y", "%m-%d-%Y"),),
}
KEEP_HINT = "declare it in data.columns to keep it"


@dataclass(frozen=True)
class Reading:
    """How one column is read: a kind and a rule, or the reason it is excluded from the features.

    Attributes
    ----------
    kind
        The feature kind, or None when the column is excluded.
    rule
        Why: the rule that chose the kind, or the exclusion reason.
    format
        For dates, the format every value is parsed with (``ISO8601`` or a strftime format).
    """

    kind: ColumnKind | None
    rule: str
    format: str | None = None


@dataclass(frozen=True)
class DateFormat:
    """A date format that parses a column, and whether day and month could be swapped."""

    format: str
    ambiguous: bool

    def rule(self) -> str:
        """Return the rule in words, naming the ambiguity and how to settle it."""
        if not self.ambiguous:
            return f"dates, format {self.format}"
        first = "month" if self.format.startswith("%m") else "day"
        return (
            f"dates, format {self.format} (ambiguous: day and month are both 12 or less in every "
            f"value; read {first} first, declare the format in data.columns to change it)"
        )


def id_like_name(name: str) -> bool:
    """Return whether a column's name says it is a row key (id, *_id, *id, key, index, ...).

    A column without a name is one too: a table's index written out with it (``to_csv``).
    """
    return not name.strip() or bool(_ID_NAME.search(name.strip()))


def read_column(values: pd.Series, name: str, checks: ChecksParams) -> Reading:
    """Decide how an undeclared column is read.

    Parameters
    ----------
    values
        The column as read from the file (not modified).
    name
        Its name, for the identifier rule.
    checks
        Thresholds: ``numeric_min_share`` and ``max_integer_codes``.

    Returns
    -------
    Reading
        The kind and the rule, or ``kind=None`` and the reason the column is excluded.
    """
    present = values.dropna()
    if present.empty:
        return Reading(None, "empty: every value is missing")
    # The sample settles most columns; only one whose sample is constant is counted in full.
    if present.iloc[:_SAMPLE].nunique() == 1 and present.nunique() == 1:
        return Reading(None, f"constant: one value ({_short(present.iat[0])})")
    if pd.api.types.is_bool_dtype(values):
        return Reading("boolean", "boolean dtype")
    if pd.api.types.is_datetime64_any_dtype(values):
        # Stored as dates (Parquet, or ISO text the CSV reader parsed): later text is ISO 8601,
        # so a CSV and a Parquet copy of one table give one schema.
        return Reading("datetime", DateFormat("ISO8601", ambiguous=False).rule(), "ISO8601")
    if isinstance(values.dtype, pd.CategoricalDtype):
        return Reading("categorical", "pandas category dtype (e.g. a Parquet dictionary column)")
    if pd.api.types.is_numeric_dtype(values):
        return _read_numbers(present, len(values), name, checks, "")
    return _read_text(present, len(values), name, checks)


def _read_numbers(
    present: pd.Series, rows: int, name: str, checks: ChecksParams, source: str
) -> Reading:
    """Numbers (or ``source`` text that parses as numbers): 0/1, codes, an id, or a measure."""
    numbers = present.astype(float)
    distinct = present.nunique()  # before float: 64-bit ids may collide as floats
    if distinct == 2 and set(numbers.unique()) == {0.0, 1.0}:
        return Reading("boolean", f"0/1 values{source}")
    whole = bool((numbers == numbers.round()).all())
    if whole and distinct == len(present) and _key_like(numbers, rows, name):
        return Reading(None, "identifier: unique per row" + _because(numbers, name))
    if whole and 2 <= distinct <= checks.max_integer_codes:
        return Reading(
            "categorical",
            f"integer codes{source}: {distinct} distinct values, at most "
            f"{checks.max_integer_codes} (ingest.checks.max_integer_codes)",
        )
    if distinct == 2:
        return Reading("categorical", f"two distinct values{source}")
    return Reading("numeric", f"numbers{source}")


def _key_like(numbers: pd.Series, rows: int, name: str) -> bool:
    if id_like_name(name):
        return True
    consecutive = numbers.max() - numbers.min() + 1 == len(numbers)
    return bool(consecutive) and rows >= ID_MIN_ROWS


def _because(numbers: pd.Series, name: str) -> str:
    if not name.strip():
        return ", a column without a name (a saved row index)"
    if id_like_name(name):
        return f", named like an id ({name!r})"
    return f", a sequence {numbers.min():.0f}..{numbers.max():.0f}"


def _read_text(present: pd.Series, rows: int, name: str, checks: ChecksParams) -> Reading:
    """Strings: booleans, numbers, dates, free text, identifiers or categories, in that order."""
    sample = present.iloc[:_SAMPLE]
    text = sample.astype(str).str.strip()
    lower = text.str.lower()
    words = set(lower.unique())
    if len(words) <= 2 and words <= TRUE_WORDS | FALSE_WORDS:
        vocabulary = next((v for v, known in _BOOLEAN_VOCABULARIES if words <= known), None)
        return Reading("boolean", vocabulary or "boolean words (true/false, yes/no, 1/0)")
    numbers = pd.to_numeric(sample, errors="coerce")
    if numbers.notna().mean() >= checks.numeric_min_share:
        if text.str.match(r"^0\d").any():
            if _unique_key(present, rows, name):
                return Reading(None, "identifier: unique per row (numbers with leading zeros)")
            return Reading("categorical", "codes with leading zeros (e.g. postcodes)")
        parsed = pd.to_numeric(present, errors="coerce").dropna()
        return _read_numbers(parsed, rows, name, checks, " (written as text)")
    found = date_format_of(present)
    if found is not None:
        return Reading("datetime", found.rule(), found.format)
    if sample.nunique() / len(sample) > FREE_TEXT_MIN_DISTINCT and _long(text):
        return Reading(None, "free text: long, mostly unique strings")
    if _unique_key(present, rows, name):
        return Reading(None, "identifier: unique per row")
    distinct = present.nunique()
    if _ID_WORD.search(name.strip()) and distinct > ID_DISTINCT_SHARE * len(present):
        return Reading(
            None, f"identifier: named {name!r}, {distinct:,} distinct values in {len(present):,}"
        )
    return Reading("categorical", f"text: {distinct:,} distinct values")


def _unique_key(present: pd.Series, rows: int, name: str) -> bool:
    """Return whether the values are unique per row (in a table large enough, or id-named)."""
    if not (rows >= ID_MIN_ROWS or id_like_name(name)):
        return False
    sample = present.iloc[:_SAMPLE]
    return sample.nunique() == len(sample) and present.nunique() == len(present)


def _long(text: pd.Series) -> bool:
    mean_length = text.str.len().mean()
    mean_words = text.str.split().str.len().mean()
    return bool(mean_length > FREE_TEXT_MIN_LENGTH or mean_words >= FREE_TEXT_MIN_WORDS)


def _short(value: object) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _candidates(text: pd.Series) -> list[tuple[str, ...]]:
    """Format groups to try: each group holds the readings of one layout, preferred first."""
    groups: list[tuple[str, ...]] = []
    if text.str.match(_ISO_START).mean() >= DATE_MIN_SHARE:
        groups.append(("ISO8601",))
    if text.str.match(r"^\d{4}/\d{1,2}/\d{1,2}").mean() >= DATE_MIN_SHARE:
        groups += [(f"%Y/%m/%d{time}",) for time in _TIMES]
    for separator, orders in _DATE_ORDERS.items():
        layout = rf"^\d{{1,2}}\{separator}\d{{1,2}}\{separator}\d"
        if text.str.match(layout).mean() < DATE_MIN_SHARE:
            continue
        for preferred, other in orders:
            groups += [(preferred + time, other + time) for time in _TIMES]
    return groups


def date_format_of(present: pd.Series) -> DateFormat | None:
    """Find the date format of a column's present values (a sample, the whole when ambiguous).

    A sample whose days are all 12 or less may be settled by the rest of the column: then the
    whole column is tried, and the ambiguity is reported only when it remains.
    """
    found = detect_date_format(present.iloc[:_SAMPLE].astype(str).str.strip())
    if found is not None and found.ambiguous and len(present) > _SAMPLE:
        return detect_date_format(present.astype(str).str.strip()) or found
    return found


def detect_date_format(text: pd.Series) -> DateFormat | None:
    """Find the one format that parses (nearly) every value of a text column.

    Each candidate is applied to the whole sample with ``pandas.to_datetime(format=...)``, never
    pandas' per-value guessing, so every later file (and every served row) is read the same way.
    When both the month-first and the day-first reading parse everything, the preferred one is
    kept (month first for ``/``, day first for ``.`` and ``-``) and the result is ambiguous.

    Parameters
    ----------
    text
        Stripped strings, no missing values.

    Returns
    -------
    DateFormat or None
        None when the values are not dates in one of the known formats.
    """
    looks = text.str.match(_DATE_LIKE) | text.str.match(_ISO_START)
    if text.empty or looks.mean() < DATE_MIN_SHARE:
        return None
    best: DateFormat | None = None
    best_share = DATE_MIN_SHARE
    for group in _candidates(text):
        shares = [_parse_share(text, fmt) for fmt in group]
        top = max(shares)
        if top >= best_share and (best is None or top > best_share):
            chosen = group[shares.index(top)]
            ambiguous = len(group) > 1 and shares[0] == shares[1] == top
            best, best_share = DateFormat(chosen, ambiguous), top
    return best


def _parse_share(text: pd.Series, fmt: str) -> float:
    """Return the share of ``text`` that parses as dates in format ``fmt``."""
    parsed = pd.to_datetime(text, errors="coerce", format=fmt, utc=True)
    return float(parsed.notna().mean())
