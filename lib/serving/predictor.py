"""Predicting: a loaded model (pipeline, schema, registry facts, fast path) and its answers."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lib.data.schema import Schema
from lib.serving.batch import Batch
from lib.serving.fastpath import FastPipeline, Unsupported


@dataclass(frozen=True)
class LoadedModel:
    """A fitted pipeline with its schema, registry facts and (when verified) its fast path."""

    pipeline: Any
    schema: Schema
    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    threshold: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    trained_at: str | None = None
    fast: FastPipeline | None = None

    @property
    def classes(self) -> list[Any] | None:
        """Class labels in the schema's order (None for regression)."""
        return self.schema.classes

    def _call(self, data: Batch | pd.DataFrame, *methods: str) -> list[np.ndarray]:
        """Transform the rows once, then call the final estimator's ``methods`` on them.

        The same as calling the pipeline's methods (a Pipeline does exactly this); the fast path
        replaces only the preprocessing, by an exact equivalent.
        """
        final = self.pipeline[-1]
        transformed = None
        if isinstance(data, Batch):
            if self.fast is not None:
                with contextlib.suppress(Unsupported):  # a value it cannot place: use the pipeline
                    transformed = self.fast.transform(data.columns)
            if transformed is None:
                data = data.frame()
        if transformed is None:
            transformed = self.pipeline[:-1].transform(data)
        return [np.asarray(getattr(final, m)(transformed)) for m in methods]

    def _in_schema_order(self, raw: np.ndarray) -> np.ndarray:
        order = [list(self.pipeline.classes_).index(c) for c in self.classes or []]
        return raw[:, order]

    def predict(self, data: Batch | pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Return (labels or values, class probabilities in schema order or None).

        Labels follow the decision threshold chosen at evaluation, when there is one.
        """
        if self.schema.task == "regression":
            return np.asarray(self._call(data, "predict")[0], dtype=float), None
        proba = self._in_schema_order(self._call(data, "predict_proba")[0])
        labels = np.asarray(self.classes)
        if self.threshold is not None and len(labels) == 2:
            return np.where(proba[:, 1] >= self.threshold, labels[1], labels[0]), proba
        return labels[np.argmax(proba, axis=1)], proba
