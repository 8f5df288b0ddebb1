"""The parameters checked against the data as ingest would read it (``quire check``, dry runs).

The data is read as the ingest stage reads it (the generator writes its raw files first, as it
would for ingest) and its schema inferred; nothing is trained and no stage output is written.
The checks themselves are :mod:`lib.data.preflight`'s, as the ingest stage runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lib.core.params import Params
from lib.data.schema import Schema


@dataclass(frozen=True)
class CheckReport:
    """What ``quire check`` read and checked."""

    sources: list[Path]
    rows: int
    columns: list[str]
    schema: Schema
    keys: dict[str, list[str]]
    defaults: list[str]

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
            *(f"  {line}" for line in self.defaults),
            "ok: every parameter names a column, metric and file the data and task offer "
            "(nothing trained)",
        ]
        return "\n".join(lines)


def read_sources(params: Params) -> tuple[list[Path], list[pd.DataFrame]]:
    """Return the files the ingest stage would read, and their tables as read."""
    from lib.data.ingest import resolve_sources
    from lib.data.readers import read_table

    sources, _production = resolve_sources(params)
    return sources, [read_table(path, params.data.csv, params.data.rename) for path in sources]


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
    from lib.data import preflight
    from lib.data.validate import infer_schema

    sources, frames = read(params)
    columns = [c for c in frames[0].columns if all(c in f.columns for f in frames[1:])]
    data = preflight.inferable(params.data, columns)
    schema = infer_schema(frames[0], data, params.ingest.checks, sources[0]) if data else None
    preflight.check(
        params, columns, schema, str(sources[0]), lambda p: preflight.file_columns(p, params)
    )
    assert schema is not None  # check() raised otherwise
    keys = preflight.column_keys(params)
    defaults = preflight.resolved_defaults(params, schema)
    return CheckReport(sources, sum(len(f) for f in frames), columns, schema, keys, defaults)


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def check_before_run(params: Params) -> str:
    """Check the parameters before a run starts a stage; return what they were checked against.

    Against the schema the ingest stage saved when it was inferred with these data parameters
    (no data read), else against the data as ingest will read it. Raises ParamsError listing
    every problem, each with the layer its value came from (the stages see only their own
    sections, so only here can a problem with, say, ``evaluate.segments`` stop the run before
    anything is trained).
    """
    from lib.core.layout import Layout
    from lib.data import preflight
    from lib.data.ingest import SCHEMA
    from lib.data.schema import params_fingerprint

    saved = Layout.of(params, staged=False).processed / SCHEMA
    if saved.exists():
        schema = Schema.load(saved)
        if schema.params_fingerprint == params_fingerprint(params.data):
            columns = [
                schema.target,
                *schema.names(),
                *([schema.id_column] if schema.id_column else []),
                *getattr(schema, "excluded", {}),
                *params.data.drop,
            ]
            preflight.check(
                params, columns, schema, str(saved), lambda p: preflight.file_columns(p, params)
            )
            return str(saved)
    return ", ".join(str(s) for s in check_columns(params).sources)
