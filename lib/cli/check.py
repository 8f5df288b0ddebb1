"""``quire check``: every parameter that names a column, checked against the data.

The data is read as the ingest stage reads it (the generator writes its raw files first, as it
would for ingest) and its schema inferred; nothing is trained and no stage output is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lib.core.errors import ParamsError
from lib.core.param_sections import ColumnKind
from lib.core.params import Params
from lib.data.schema import Schema

# Keys whose columns must be model features (not the target, the id or a dropped column).
FEATURE_KEYS = (
    "evaluate.segments",
    "monitor.columns",
    "monitor.exclude",
    "monitor.methods",
    "monitor.thresholds",
    "monitor.alerts.key_features",
)
# evaluate.segments groups the test rows by value: only categorical and boolean columns.
SEGMENT_KINDS: tuple[ColumnKind, ...] = ("categorical", "boolean")
# Without these columns the schema cannot be inferred (lib.data.schema.require_columns).
_SCHEMA_KEYS = ("data.target:", "data.id_column:", "data.columns:")


@dataclass(frozen=True)
class CheckReport:
    """What ``quire check`` read and checked."""

    sources: list[Path]
    rows: int
    columns: list[str]
    schema: Schema
    keys: dict[str, list[str]]

    def format(self) -> str:
        """Return the report: what was read, the schema, the keys checked; ends ``ok``."""
        kinds = pd.Series([c.kind for c in self.schema.features]).value_counts()
        named = sum(len(v) for v in self.keys.values())
        lines = [
            f"read {len(self.sources)} file(s): {', '.join(str(s) for s in self.sources)}",
            f"  {self.rows:,} rows, {len(self.columns)} columns",
            f"schema: {self.schema.task} task, target {self.schema.target!r}, "
            f"{len(self.schema.features)} features ("
            + ", ".join(f"{n} {k}" for k, n in kinds.items())
            + ")",
            f"checked {named} column name(s) in {len(self.keys)} parameters: "
            + ", ".join(self.keys),
            "ok: every parameter names a column the data has (nothing trained)",
        ]
        return "\n".join(lines)


def column_keys(params: Params) -> dict[str, list[str]]:
    """Return each parameter that names columns, with the columns it names (unset: left out)."""
    data, monitor = params.data, params.monitor
    keys = {
        "data.target": [data.target],
        "data.id_column": [data.id_column] if data.id_column else [],
        "data.date_column": [data.date_column] if data.date_column else [],
        "data.columns": list(data.columns),
        "data.drop": list(data.drop),
        "evaluate.segments": list(params.evaluate.segments),
        "monitor.columns": list(monitor.columns or []),
        "monitor.exclude": list(monitor.exclude),
        "monitor.methods": list(monitor.methods),
        "monitor.thresholds": list(monitor.thresholds),
        "monitor.alerts.key_features": list(monitor.alerts.key_features),
    }
    return {key: names for key, names in keys.items() if names}


def read_sources(params: Params) -> tuple[list[Path], list[pd.DataFrame]]:
    """Return the files the ingest stage would read, and their tables as read."""
    from lib.data.ingest import resolve_sources
    from lib.data.readers import read_table

    sources, _production = resolve_sources(params)
    return sources, [read_table(path, params.data.csv) for path in sources]


def missing_columns(keys: dict[str, list[str]], columns: list[str]) -> list[str]:
    """Return one line per parameter naming columns that are not in ``columns``."""
    present = set(columns)
    return [
        f"{key}: no column {_names(absent)} in the data"
        for key, names in keys.items()
        if (absent := [n for n in names if n not in present])
    ]


def misplaced_columns(keys: dict[str, list[str]], schema: Schema) -> list[str]:
    """Return one line per parameter naming present columns that it cannot use.

    Drift and alert keys need model features; ``evaluate.segments`` needs categorical or
    boolean features.
    """
    features = schema.names()
    segmentable = [n for kind in SEGMENT_KINDS for n in schema.names(kind)]
    rules: dict[str, tuple[list[str], str]] = {
        key: (features, "not a model feature (the features: " + ", ".join(features) + ")")
        for key in FEATURE_KEYS
    }
    rules["evaluate.segments"] = (
        segmentable,
        "not a categorical or boolean feature (those: " + (", ".join(segmentable) or "none") + ")",
    )
    return [
        f"{key}: {_names(wrong)}: {why}"
        for key, (allowed, why) in rules.items()
        if (wrong := [n for n in keys.get(key, []) if n not in allowed])
    ]


Reader = Callable[[Params], tuple[list[Path], list[pd.DataFrame]]]


def check_columns(params: Params, read: Reader = read_sources) -> CheckReport:
    """Check every column-naming parameter against the data; report what was checked.

    Parameters
    ----------
    params
        The validated parameters.
    read
        Returns the source files and their tables (default: as the ingest stage reads them).

    Returns
    -------
    CheckReport
        The files read, the inferred schema and the keys checked.

    Raises
    ------
    ParamsError
        Naming every parameter whose columns the data lacks or the parameter cannot use, and
        what to do about it; ``key`` is the first of them.
    """
    from lib.data.validate import infer_schema

    sources, frames = read(params)
    columns = [c for c in frames[0].columns if all(c in f.columns for f in frames[1:])]
    keys = column_keys(params)
    problems = missing_columns(keys, columns)
    if not any(line.startswith(_SCHEMA_KEYS) for line in problems):
        schema = infer_schema(frames[0], params.data, params.ingest.checks, sources[0])
        present = {k: [n for n in v if n in columns] for k, v in keys.items()}
        problems += misplaced_columns(present, schema)
    if problems:
        raise ParamsError(
            f"{len(problems)} parameter(s) name columns the data does not offer:\n  "
            + "\n  ".join(problems)
            + f"\nthe data's columns ({sources[0]}): {', '.join(map(str, columns))}"
            + "\nfix the names in the params (--params file, -p, QUIRE__* variables) or the data",
            key=problems[0].split(":", 1)[0],
        )
    return CheckReport(sources, sum(len(f) for f in frames), columns, schema, keys)


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
