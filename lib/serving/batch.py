"""The checked rows a model is given, and the problems that stop a row from being checked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lib.core.errors import DataValidationError


@dataclass(frozen=True)
class Problem:
    """One reason a submitted row is unusable."""

    row: int
    field: str
    reason: str


class InputError(DataValidationError):
    """Rows that break the model's input contract (each problem names the row and field).

    Parameters
    ----------
    problems
        Every problem found, in row order (the message names the first).
    code
        Short name of the failed check, e.g. ``batch_too_large`` (also ``check``).
    """

    def __init__(self, problems: list[Problem], code: str = "invalid_input") -> None:
        first = problems[0]
        super().__init__(
            f"row {first.row}, field {first.field!r}: {first.reason}",
            column=first.field or None,
            check=code,
        )
        self.problems = problems
        self.code = code


@dataclass(frozen=True)
class Batch:
    """Checked input rows as typed column arrays, in the schema's column order.

    Numeric and boolean columns are float (NaN: missing), categorical ones object (str or None),
    dates ``datetime64[ns]`` (NaT: missing). ``unknown`` lists, per row, the fields whose
    category was not seen in training. ``ids`` holds each row's value of the schema's id column
    as sent (None where a row has none), or is None when no row sent one: the id is echoed and
    logged, never given to the model.
    """

    columns: dict[str, np.ndarray]
    unknown: list[list[str]]
    ids: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.unknown)

    def frame(self) -> pd.DataFrame:
        """Return the rows as a DataFrame (what the pipeline itself takes)."""
        return pd.DataFrame(self.columns)

    @staticmethod
    def concat(parts: Sequence[Batch]) -> Batch:
        """Stack batches in order."""
        if len(parts) == 1:
            return parts[0]
        names = parts[0].columns
        ids = None
        if any(p.ids is not None for p in parts):
            ids = [i for p in parts for i in (p.ids if p.ids is not None else [None] * len(p))]
        return Batch(
            {n: np.concatenate([p.columns[n] for p in parts]) for n in names},
            [flags for p in parts for flags in p.unknown],
            ids,
        )
