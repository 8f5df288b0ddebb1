"""Validation of a table against its schema: hard failures raise, soft findings are reported."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from lib.core.errors import DataValidationError
from lib.core.param_sections import ChecksParams, DataParams
from lib.data.schema import Schema, coerce_column, complete_schema, draft_schema

Severity = Literal["pass", "soft", "hard"]
_MAX_EXAMPLES = 3
_MAX_ROWS = 5


@dataclass(frozen=True)
class Finding:
    """One row of the validation report."""

    file: str
    column: str
    check: str
    severity: Severity
    count: int
    share: float
    examples: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)


def _finding(
    path: Path, column: str, check: str, mask: pd.Series | np.ndarray, values: pd.Series | None
) -> Finding:
    flags = np.asarray(mask, dtype=bool)
    positions = np.flatnonzero(flags)
    examples: list[str] = []
    if values is not None and len(positions):
        picked = values.iloc[positions[:200]].drop_duplicates().iloc[:_MAX_EXAMPLES]
        examples = [str(v) for v in picked]
    return Finding(
        file=str(path),
        column=column,
        check=check,
        severity="soft" if len(positions) else "pass",
        count=len(positions),
        share=float(len(positions) / max(len(flags), 1)),
        examples=examples,
        rows=[int(p) + 1 for p in positions[:_MAX_ROWS]],
    )


def conform(frame: pd.DataFrame, schema: Schema, path: Path) -> tuple[pd.DataFrame, list[Finding]]:
    """Return the table in the schema's columns and canonical dtypes, with findings so far.

    Rows without a target are dropped (a soft finding); columns the schema does not know are
    dropped (a soft finding), the ones it excludes from the features silently; a missing schema
    column or a value of the wrong type raises. Dates are parsed in the schema's format.

    Parameters
    ----------
    frame
        The table as read from ``path``.
    schema
        The contract to conform to.
    path
        The file, for messages.

    Returns
    -------
    tuple of (pandas.DataFrame, list of Finding)
        The new conformed frame and the findings made while conforming.
    """
    findings: list[Finding] = []
    if schema.target not in frame.columns:
        raise DataValidationError(
            f"{path}: target column {schema.target!r} is missing; add it, or set data.target "
            "to the column to predict",
            path=path,
            column=schema.target,
            check="missing_target",
        )
    missing = [c for c in schema.names() if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{path}: required column {missing[0]!r} is missing"
            + (f" (and {len(missing) - 1} more: {missing[1:6]})" if len(missing) > 1 else "")
            + "; add it, or re-infer the schema with ingest.schema_mode: infer if the data "
            "changed on purpose",
            path=path,
            column=missing[0],
            check="missing_column",
        )
    keep = [c for c in (schema.id_column, schema.date_column) if c and c in frame.columns]
    # Excluded columns (identifiers, free text, constants) are expected and left out quietly.
    known = {*schema.names(), schema.target, *keep, *schema.excluded}
    for extra in (c for c in frame.columns if c not in known):
        findings.append(
            Finding(str(path), str(extra), "unexpected_column", "soft", len(frame), 1.0)
        )
    columns: dict[str, pd.Series] = {}
    if schema.id_column and schema.id_column in frame.columns:
        columns[schema.id_column] = frame[schema.id_column].astype(str)
    for col in schema.features:
        columns[col.name] = coerce_column(frame[col.name], col.kind, col.name, path, col.format)
    target = frame[schema.target]
    columns[schema.target] = (
        coerce_column(target, "numeric", schema.target, path)
        if schema.task == "regression"
        else target
    )
    # copy=False keeps one block per column: no consolidation copy of the whole table.
    out = pd.DataFrame(columns, index=frame.index, copy=False)
    no_label = out[schema.target].isna()
    findings.append(_finding(path, schema.target, "missing_target_dropped", no_label, None))
    if no_label.any():
        out = out[~no_label.to_numpy()]
    return out.reset_index(drop=True), findings


def check(frame: pd.DataFrame, schema: Schema, checks: ChecksParams, path: Path) -> list[Finding]:
    """Run the soft checks on a conformed frame; raise on declared non-null columns with nulls.

    Parameters
    ----------
    frame
        Output of :func:`conform`.
    schema
        The contract.
    checks
        Thresholds.
    path
        The file, for messages.

    Returns
    -------
    list of Finding
        One finding per column and check (``pass`` when nothing failed).
    """
    findings: list[Finding] = []
    for col in schema.features:
        values = frame[col.name]
        nulls = values.isna()
        if not col.nullable and nulls.any():
            row = int(np.flatnonzero(nulls.to_numpy())[0]) + 1
            if col.declared:
                raise DataValidationError(
                    f"{path}: column {col.name!r} row {row:,} is empty but the column is declared "
                    "nullable: false; fill the value or set nullable: true in data.columns",
                    path=path,
                    row=row,
                    column=col.name,
                    check="null_in_required",
                )
        missing = _finding(path, col.name, "missing_values", nulls, None)
        over = missing.share > checks.max_missing_share
        findings.append(_with_severity(missing, "soft" if over else "pass"))
        if col.kind == "numeric" and (col.min is not None or col.max is not None):
            none = pd.Series(False, index=values.index)
            low = values < col.min if col.min is not None else none
            high = values > col.max if col.max is not None else none
            findings.append(_finding(path, col.name, "out_of_range", low | high, values))
        if col.kind == "categorical" and col.categories is not None:
            unseen = ~nulls & ~values.isin(col.categories)
            findings.append(_finding(path, col.name, "unseen_category", unseen, values))
    findings += _check_target(frame, schema, path)
    subset = [*schema.names(), schema.target]
    dup = frame.duplicated(subset=subset)
    duplicates = _finding(path, "(all)", "duplicate_rows", dup, None)
    over = duplicates.share > checks.max_duplicate_share
    findings.append(_with_severity(duplicates, "soft" if over else "pass"))
    return findings


def _check_target(frame: pd.DataFrame, schema: Schema, path: Path) -> list[Finding]:
    if schema.task == "regression":
        return []
    target = frame[schema.target]
    present = target.dropna().unique()
    if len(present) < 2:
        first = present[0] if len(present) else None
        shown = repr(first.item() if isinstance(first, np.generic) else first)
        raise DataValidationError(
            f"{path}: target {schema.target!r} has one class ({shown}) in {len(target):,} labelled "
            "rows; a classifier needs at least two: check data.target or the data",
            path=path,
            column=schema.target,
            check="one_class",
        )
    known = {str(c) for c in schema.classes or []}
    unseen = ~target.astype(str).isin(known)
    return [_finding(path, schema.target, "unseen_class", unseen, target)]


def _with_severity(finding: Finding, severity: Severity) -> Finding:
    return Finding(**{**asdict(finding), "severity": severity})


def infer_schema(frame: pd.DataFrame, data: DataParams, checks: ChecksParams, path: Path) -> Schema:
    """Infer the complete schema of one raw table (draft, conform, then profile).

    Parameters
    ----------
    frame
        The raw table as read from ``path``.
    data
        Data parameters (target, id, date, declared and dropped columns).
    checks
        Inference thresholds.
    path
        The file, for messages.

    Returns
    -------
    Schema
        Kinds, nullability, ranges, categories, target, task and classes.
    """
    draft = draft_schema(frame, data, checks, path)
    conformed, _ = conform(frame, draft, path)
    return complete_schema(draft, conformed)


def report_frame(findings: list[Finding]) -> pd.DataFrame:
    """Return the findings as a table, failing checks first."""
    columns = ["file", "column", "check", "severity", "count", "share", "examples", "rows"]
    table = pd.DataFrame([asdict(f) for f in findings], columns=columns)
    order = table["severity"].map({"hard": 0, "soft": 1, "pass": 2})
    return (
        table.assign(_order=order)
        .sort_values(["_order", "file", "column"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
