"""The server's mutable state: the loaded model (swapped atomically), log, batcher, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from lib.core import tracking
from lib.core.params import Params
from lib.serving.batch import Batch
from lib.serving.contract import check_rows
from lib.serving.loading import load_model
from lib.serving.predictor import LoadedModel
from server.batcher import MicroBatcher
from server.config import Settings
from server.metrics import Metrics
from server.predlog import PredictionLog

_T = TypeVar("_T")


@dataclass
class ServingState:
    """Everything a request needs; ``model`` is replaced whole on reload."""

    settings: Settings
    params: Params
    metrics: Metrics
    model: LoadedModel | None = None
    predlog: PredictionLog | None = None
    batcher: MicroBatcher | None = None
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def current(self) -> LoadedModel:
        """Return the model to use now (requests keep the one they started with)."""
        assert self.model is not None
        return self.model

    def log_name(self, model: LoadedModel) -> str:
        """Return the model's folder name for its prediction log and labels.

        The registered name; a model served from a local folder has none, and goes under the
        project's model name, where the monitor stage and ``--retrain`` look.
        """
        return str(model.name or tracking.model_name(self.params))

    def install(self, model: LoadedModel) -> None:
        """Warm the model up with one prediction, then make it the served one."""
        model.predict(check_rows(self.example_rows(model), model.schema))
        self.model = model
        self.metrics.model.info(
            {
                "name": str(model.name),
                "version": str(model.version),
                "alias": str(model.alias),
                "uri": model.uri,
            }
        )
        self.metrics.ready.set(1)

    async def reload(self) -> LoadedModel:
        """Load the model (again: e.g. a new champion), warm it up and swap it in atomically.

        Requests that already hold the old model finish on it; later ones get the new one.
        """
        async with self.reload_lock:
            fresh = await asyncio.to_thread(
                load_model, self.params, self.settings.model_uri, fast=self.settings.fast_path
            )
            await asyncio.to_thread(self.install, fresh)
        return fresh

    async def run_model(self, method: Callable[[Batch], _T], batch: Batch) -> _T:
        """Call a model method on ``batch``: inline when small, else in a worker thread.

        A small prediction takes about a millisecond; handing it to a thread costs more than
        that in waits for the GIL (the interpreter switches threads every 5 ms), so only larger
        batches leave the event loop.
        """
        if len(batch) <= self.settings.inline_rows:
            return method(batch)
        return await asyncio.to_thread(method, batch)

    @staticmethod
    def example_rows(model: LoadedModel) -> list[dict[str, Any]]:
        """One plausible row built from the schema (for warm-up and the docs' example)."""
        row: dict[str, Any] = {}
        for col in model.schema.features:
            if col.kind == "numeric":
                low, high = col.min or 0.0, col.max if col.max is not None else 1.0
                row[col.name] = round((low + high) / 2, 2)
            elif col.kind == "boolean":
                row[col.name] = False
            elif col.kind == "datetime":
                row[col.name] = "2024-01-31"
            else:
                row[col.name] = (col.categories or ["a"])[0]
        return [row]

    def log_rows(
        self,
        request_id: str,
        model: LoadedModel,
        batch: Batch,
        labels: np.ndarray,
        proba: np.ndarray | None,
    ) -> None:
        """Queue the served rows for the prediction log (never blocks; columns, not dicts)."""
        if self.predlog is None:
            return
        n = len(batch)
        table: dict[str, Any] = dict(batch.columns)
        table["request_id"] = np.full(n, request_id, dtype=object)
        table["row"] = np.arange(n)
        now = np.datetime64(pd.Timestamp.now(tz="UTC").tz_localize(None), "ns")
        table["time"] = np.full(n, now)  # UTC; the log stores it as a UTC timestamp
        table["model_version"] = np.full(n, model.version, dtype=object)
        table["prediction"] = labels
        if proba is not None and model.classes is not None:
            for j, label in enumerate(model.classes):
                table[f"proba_{label}"] = proba[:, j]
        self.predlog.append(table)
