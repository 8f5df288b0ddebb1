"""Train/validation/test split: stratified for classification, or by time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lib.core.errors import ParamsError
from lib.core.logs import get_logger
from lib.core.param_sections import SplitParams
from lib.data.schema import Schema
from lib.data.validate import Finding

log = get_logger(__name__)
SPLITS = ("train", "validation", "test")


def split_positions(
    frame: pd.DataFrame, schema: Schema, p: SplitParams, seed: int
) -> tuple[dict[str, np.ndarray], str]:
    """Return row positions of each split and a sentence saying how they were chosen.

    Parameters
    ----------
    frame
        The conformed table.
    schema
        Gives the task, target and date column.
    p
        Fractions and whether to split by time.
    seed
        Integer seed for the random split.

    Returns
    -------
    tuple of (dict of str to numpy.ndarray, str)
        Sorted positions per split (disjoint, covering every row) and the method used.
    """
    n = len(frame)
    if n < 10:
        raise ParamsError(
            f"only {n} rows with a target: a train/validation/test split needs at least 10",
            key="ingest.split",
        )
    if p.by_time:
        return _by_time(frame, schema, p)
    labels = frame[schema.target].to_numpy() if schema.task != "regression" else None
    rng = np.random.default_rng(seed)
    if labels is not None and _can_stratify(labels, n, p):
        codes = pd.factorize(labels, sort=True)[0]
        groups = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]
        method = "stratified random split on the target"
    else:
        groups = [np.arange(n)]
        method = "random split" if labels is None else "random split (a class is too rare)"
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for group in groups:
        # Each class is shuffled and cut at the same fractions: shares match exactly.
        shuffled = rng.permutation(group)
        n_test = round(len(group) * p.test)
        n_val = round(len(group) * p.validation)
        parts["test"].append(shuffled[:n_test])
        parts["validation"].append(shuffled[n_test : n_test + n_val])
        parts["train"].append(shuffled[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}, method


def _can_stratify(labels: np.ndarray, n: int, p: SplitParams) -> bool:
    smallest = int(pd.Series(labels).value_counts().min())
    # Each split must be able to hold every class at least once.
    return smallest >= 3 and min(p.test, p.validation) * n >= len(set(labels.tolist()))


def _by_time(
    frame: pd.DataFrame, schema: Schema, p: SplitParams
) -> tuple[dict[str, np.ndarray], str]:
    column = schema.date_column
    if column is None:
        raise ParamsError(
            "ingest.split.by_time is true but no date column is known; set data.date_column to a "
            "date column of the data, or set ingest.split.by_time: false",
            key="ingest.split.by_time",
        )
    order = np.argsort(frame[column].to_numpy(), kind="stable")
    n = len(order)
    n_test = max(1, round(n * p.test))
    n_val = max(1, round(n * p.validation))
    test = order[n - n_test :]
    val = order[n - n_test - n_val : n - n_test]
    train = order[: n - n_test - n_val]
    method = f"by time on {column!r}: latest rows to test, the ones before to validation"
    return {"train": np.sort(train), "validation": np.sort(val), "test": np.sort(test)}, method


def class_counts(
    frame: pd.DataFrame, schema: Schema, positions: dict[str, np.ndarray]
) -> pd.DataFrame | None:
    """Return rows of each class in each split (classes as rows, splits as columns).

    Parameters
    ----------
    frame
        The conformed table the positions index.
    schema
        Gives the task, target and the full class list.
    positions
        Row positions of each split, as :func:`split_positions` returns them.

    Returns
    -------
    pandas.DataFrame or None
        Counts with a row per class (every class of the schema, even one with no rows) and a
        column per split; None for regression.
    """
    if schema.task == "regression":
        return None
    target = frame[schema.target]
    classes = schema.classes if schema.classes is not None else sorted(target.dropna().unique())
    table = pd.DataFrame(
        {
            name: target.iloc[positions[name]].value_counts().reindex(classes, fill_value=0)
            for name in SPLITS
        }
    )
    table.index = pd.Index([str(c) for c in classes], name="class")
    return table.astype(int)


def split_findings(
    frame: pd.DataFrame,
    schema: Schema,
    positions: dict[str, np.ndarray],
    p: SplitParams,
) -> list[Finding]:
    """Return a soft finding per class that has no rows in a split, with the counts per split.

    A time split puts the latest rows in validation and test, so a class seen only early (a
    discontinued product, a new label) can be absent there: its metrics are then undefined and
    the test score says nothing about it. The finding names the class, the split and the counts,
    and offers the stratified split.

    Parameters
    ----------
    frame
        The conformed table the positions index.
    schema
        Gives the task and target.
    positions
        Row positions of each split.
    p
        The split parameters (whether the split was by time).

    Returns
    -------
    list of Finding
        One ``class_missing_in_split`` finding per class lacking in some split; none for
        regression or when every split holds every class.
    """
    counts = class_counts(frame, schema, positions)
    if counts is None:
        return []
    findings = []
    fix = (
        "set ingest.split.by_time: false for a stratified split"
        if p.by_time
        else "too few rows of the class for every split to hold it; add rows of it to the source"
    )
    for label, row in counts.iterrows():
        empty = [name for name in SPLITS if row[name] == 0]
        if not empty:
            continue
        per_split = ", ".join(f"{name} {row[name]}" for name in SPLITS)
        message = f"class {label!r} has 0 rows in {' and '.join(empty)} ({per_split}); {fix}"
        log.warning(
            "class_missing_in_split",
            label=label,
            splits=empty,
            **{str(k): int(v) for k, v in row.items()},
        )
        findings.append(
            Finding(
                file="(split)",
                column=schema.target,
                check="class_missing_in_split",
                severity="soft",
                count=int(row.sum()),
                share=float(row.sum() / max(len(frame), 1)),
                examples=[message],
            )
        )
    return findings
