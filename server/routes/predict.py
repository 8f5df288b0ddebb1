"""Quire's own routes: /predict (one row), /predict/batch, /model."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request

from lib.serving.batch import Batch, InputError, Problem
from lib.serving.predictor import LoadedModel
from server.bodies import FastJSONResponse, json_body
from server.deps import Model, RequestId, State, require_api_key

router = APIRouter(tags=["predict"], dependencies=[Depends(require_api_key)])

_ROW_DOC = {
    "description": "One row: a field per model input (see the schema below).",
    "required": True,
}


def _one_row(body: Any) -> list[dict[str, Any]]:
    """Return the single row of a /predict body, as a list of rows."""
    if not isinstance(body, dict):
        raise InputError(
            [Problem(0, "", "expected one object of field: value; use /predict/batch for a list")]
        )
    return [body]


def _batch_rows(body: Any) -> list[Any]:
    """Return the rows of a /predict/batch body: a list, or ``{"rows": [...]}``."""
    rows = body.get("rows") if isinstance(body, dict) else body
    if not isinstance(rows, list):
        raise InputError([Problem(0, "", 'expected a list of rows, or {"rows": [...]}')])
    return rows


def _answer(
    state: State,
    request_id: str,
    model: LoadedModel,
    batch: Batch,
    labels: np.ndarray,
    proba: np.ndarray | None,
) -> FastJSONResponse:
    """Count the answers and build the response (a ready FastJSONResponse: no re-encoding pass)."""
    values = labels.tolist()
    rows: list[dict[str, Any]]
    if proba is not None and model.classes is not None:
        names = [str(c) for c in model.classes]
        rows = [
            {"prediction": v, "probabilities": dict(zip(names, p, strict=True))}
            for v, p in zip(values, proba.tolist(), strict=True)
        ]
    else:
        rows = [{"prediction": v} for v in values]
    if batch.ids is not None:  # the id column, echoed as sent
        for row, key in zip(rows, batch.ids, strict=True):
            row["id"] = key
    for row, fields in zip(rows, batch.unknown, strict=True):
        if fields:
            row["unknown_categories"] = fields
            for name in fields:
                state.metrics.unknown.labels(name).inc()
    state.metrics.count_predictions(labels, model.classes)
    return FastJSONResponse(
        {
            "request_id": request_id,
            "model": {"name": model.name, "version": model.version},
            "predictions": rows,
        }
    )


@router.post("/predict", openapi_extra={"requestBody": _ROW_DOC})
async def predict_one(
    request: Request, state: State, _: Model, request_id: RequestId
) -> FastJSONResponse:
    """Predict one row (an object of field: value); concurrent calls share model batches.

    Each answer holds the label (a classifier's at the model version's decision threshold, as
    on every route), the class probabilities, and ``id``: the row's id column value, when sent
    (the id is never a model input; it is logged with the row and keys ``POST /feedback``).
    """
    batch = state.check(_one_row(await json_body(request)), state.current())
    assert state.batcher is not None
    model, labels, proba = await state.batcher.predict(batch)  # the model of the shared call
    await state.commit_rows(request_id, model, batch, labels, proba)
    return _answer(state, request_id, model, batch, labels, proba)


@router.post(
    "/predict/batch",
    openapi_extra={"requestBody": {"description": "A list of rows.", "required": True}},
)
async def predict_batch(
    request: Request, state: State, model: Model, request_id: RequestId
) -> FastJSONResponse:
    """Predict a list of rows (at most the configured row limit); each answer as /predict's."""
    batch = state.check(_batch_rows(await json_body(request)), model)
    labels, proba = await state.predict(request_id, model, batch)
    return _answer(state, request_id, model, batch, labels, proba)


def _lineage(model: LoadedModel) -> dict[str, Any] | None:
    """Where the served version came from (None for a model not loaded from the registry)."""
    if not model.name or model.version is None:
        return None
    return _version_lineage(str(model.name), str(model.version))


_LINEAGE: dict[tuple[str, str, str], dict[str, Any]] = {}  # (store, name, version)


def _version_lineage(name: str, version: str) -> dict[str, Any] | None:
    """Return a version's lineage, looked up once per version (not on every GET /model).

    Its runs, params and training data never change; a failed lookup is not kept, so a
    registry that was briefly unreachable is asked again next time.
    """
    import mlflow

    from lib.model.provenance import known_lineage

    key = (mlflow.get_tracking_uri(), name, version)
    if key not in _LINEAGE:
        found = known_lineage(name, version)
        if found is None:
            return None
        _LINEAGE[key] = found
    return _LINEAGE[key]


@router.get("/model")
async def model_info(model: Model) -> dict[str, Any]:
    """Name, version, alias, run id, training metrics, schema and training time of the model.

    ``lineage`` adds where the version came from: its MLflow runs, params digest, git commit
    and training data manifest.
    """
    return {
        "lineage": await asyncio.to_thread(_lineage, model),
        "name": model.name,
        "version": model.version,
        "alias": model.alias,
        "uri": model.uri,
        "run_id": model.run_id,
        "trained_at": model.trained_at,
        "task": model.schema.task,
        "classes": model.classes,
        "threshold": model.threshold,
        "metrics": model.metrics,
        "schema": model.schema.model_dump(mode="json"),
    }
