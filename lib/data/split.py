"""Train/validation/test split: stratified for classification, or by time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lib.core.errors import ParamsError
from lib.core.logs import get_logger
from lib.core.param_sections import SplitParams
from lib.data.schema import Schema

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
