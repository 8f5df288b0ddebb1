"""``monitor.reference`` parsed: the champion's reference, training rows, a date range, a file.

In the core layer so that the parameters' preflight can tell a file from the other kinds; the
rows are loaded by :mod:`lib.monitoring.reference_rows`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from lib.core.errors import ParamsError

ReferenceKind = Literal["champion", "training", "range", "file"]
_RANGE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})\s*$")
_RANGE_LIKE = re.compile(r"^[\d\sT:/.-]*\d\s*\.\.\s*\d[\d\sT:/.-]*$")  # meant as a range
KEY = "monitor.reference"
CHOICES = (
    "champion, training, a CSV/Parquet path, or a date range YYYY-MM-DD..YYYY-MM-DD "
    "(e.g. 2024-01-01..2024-12-31, both days included)"
)


@dataclass(frozen=True)
class ReferenceSpec:
    """A parsed ``monitor.reference``: which kind, and the path or days it names."""

    kind: ReferenceKind
    text: str
    start: pd.Timestamp | None = None  # a range's first day
    end: pd.Timestamp | None = None  # the day after a range's last day (exclusive)


def reference_spec(spec: str) -> ReferenceSpec:
    """Parse ``monitor.reference``: ``champion``, ``training``, a date range, or a file.

    Raises
    ------
    ParamsError
        For a date range that is malformed, not a calendar date, or ends before it starts.
    """
    text = spec.strip()
    if text in ("champion", "training"):
        return ReferenceSpec(kind=text, text=text)  # type: ignore[arg-type]
    match = _RANGE.match(text)
    if match is None:
        if _RANGE_LIKE.match(text):
            raise ParamsError(
                f"{KEY}: {spec!r} is not a date range; write YYYY-MM-DD..YYYY-MM-DD. "
                f"monitor.reference is one of: {CHOICES}",
                key=KEY,
            )
        return ReferenceSpec(kind="file", text=text)
    try:
        first, last = (pd.Timestamp(day) for day in match.groups())
    except ValueError as exc:
        raise ParamsError(
            f"{KEY}: {spec!r}: {exc}; write two calendar days, YYYY-MM-DD..YYYY-MM-DD",
            key=KEY,
        ) from None
    if last < first:
        raise ParamsError(
            f"{KEY}: {spec!r} ends before it starts; write the earlier day first",
            key=KEY,
        )
    return ReferenceSpec(kind="range", text=text, start=first, end=last + pd.Timedelta(days=1))
