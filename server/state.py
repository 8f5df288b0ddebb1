"""The server's mutable state: the loaded model (swapped atomically), log, batcher, metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lib.params import Params
from lib.serving import LoadedModel, load_model, records_to_frame
from server.batcher import MicroBatcher
from server.config import Settings
from server.metrics import Metrics
from server.predlog import PredictionLog


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

    def install(self, model: LoadedModel) -> None:
        """Warm the model up with one prediction, then make it the served one."""
        example = self.example_rows(model)
        frame, _ = records_to_frame(example, model.schema)
        model.predict(frame)
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
        """Load the model again (e.g. a new champion) and swap it in atomically.

        Requests that already hold the old model finish on it; later ones get the new one.
        """
        async with self.reload_lock:
            fresh = await asyncio.to_thread(load_model, self.params, self.settings.model_uri)
            await asyncio.to_thread(self.install, fresh)
        return fresh

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
        self, request_id: str, model: LoadedModel, frame: pd.DataFrame, labels: Any, proba: Any
    ) -> None:
        """Queue the served rows for the prediction log (never blocks)."""
        if self.predlog is None:
            return
        now = pd.Timestamp.now(tz="UTC")
        records: list[dict[str, Any]] = [
            {str(k): v for k, v in rec.items()} for rec in frame.to_dict("records")
        ]
        for i, rec in enumerate(records):
            rec["request_id"] = request_id
            rec["row"] = i
            rec["time"] = now
            rec["model_version"] = model.version
            rec["prediction"] = labels[i].item() if hasattr(labels[i], "item") else labels[i]
            if proba is not None and model.classes is not None:
                for j, label in enumerate(model.classes):
                    rec[f"proba_{label}"] = float(proba[i, j])
        self.predlog.append(records)
