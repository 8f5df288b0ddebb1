"""Ground truth back from the business: POST /feedback; and GET /lineage/{request_id}."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Request

from lib.core.layout import Layout
from lib.data import feedback
from lib.loop import lineage
from lib.serving.batch import InputError, Problem
from lib.serving.predictor import LoadedModel
from server.bodies import json_body
from server.deps import Model, State, require_api_key

router = APIRouter(tags=["feedback"], dependencies=[Depends(require_api_key)])

_LABELS_SCHEMA = {
    "type": "object",
    "required": ["labels"],
    "properties": {
        "labels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["request_id", "label"],
                "properties": {
                    "request_id": {"type": "string", "minLength": 1},
                    "row": {"type": "integer", "minimum": 0, "default": 0},
                    "label": {"description": "the true value: one of the model's classes"},
                },
            },
        }
    },
}
_DOC = {
    "description": (
        "Labels for served rows (row: the row's position in a batch request, 0 by default)."
    ),
    "required": True,
    "content": {"application/json": {"schema": _LABELS_SCHEMA}},
}


def _label(value: Any, model: LoadedModel, index: int) -> Any:
    """Return the label checked against the model's task, or raise naming the entry."""
    if model.classes is None:  # regression: a finite number
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InputError([Problem(index, "label", f"expected a number, got {value!r}")])
        return float(value)
    known = {str(c): c for c in model.classes}
    if str(value) not in known:
        raise InputError(
            [
                Problem(
                    index,
                    "label",
                    f"{value!r} is not one of the model's classes {list(known)}",
                )
            ]
        )
    return known[str(value)]


def _frame(body: Any, model: LoadedModel, limit: int) -> pd.DataFrame:
    entries = body.get("labels") if isinstance(body, dict) else None
    if isinstance(body, dict) and entries is None and "request_id" in body:
        entries = [body]
    if not isinstance(entries, list) or not entries:
        raise InputError([Problem(0, "labels", 'expected {"labels": [{"request_id", "label"}]}')])
    if len(entries) > limit:
        raise InputError(
            [Problem(0, "labels", f"{len(entries)} labels; at most {limit} per request")],
            code="too_many_rows",
        )
    ids, rows, values = [], [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InputError([Problem(i, "", "expected an object")])
        request_id, row = entry.get("request_id"), entry.get("row", 0)
        if not isinstance(request_id, str) or not request_id.strip():
            raise InputError([Problem(i, "request_id", "expected the request_id of a prediction")])
        if isinstance(row, bool) or not isinstance(row, int) or row < 0:
            raise InputError([Problem(i, "row", "expected a row position >= 0")])
        if "label" not in entry:
            raise InputError([Problem(i, "label", "missing: the true value for that row")])
        ids.append(request_id)
        rows.append(row)
        values.append(_label(entry["label"], model, i))
    return pd.DataFrame({"request_id": ids, "row": rows, model.schema.target: values})


@router.post("/feedback", openapi_extra={"requestBody": _DOC})
async def post_feedback(request: Request, state: State, model: Model) -> dict[str, Any]:
    """Save true labels for served rows; the monitor stage and ``--retrain`` join them by id."""
    labels = _frame(await json_body(request), model, state.settings.max_batch_rows)
    folder = Layout.of(state.params, model=state.log_name(model)).feedback
    path = await asyncio.to_thread(feedback.save_labels, folder, labels)
    return {"accepted": len(labels), "file": path.name}


@router.get("/lineage/{request_id}")
async def get_lineage(request_id: str, state: State, model: Model) -> dict[str, Any]:
    """Return where a prediction came from.

    The model version, its MLflow run, training data and params, and the monitoring runs that
    saw it.
    """
    found = await asyncio.to_thread(
        lineage.lineage, state.params, state.log_name(model), request_id
    )
    if found is None:
        raise HTTPException(
            404,
            f"no logged prediction has request_id {request_id!r} (the log is flushed every few "
            "seconds; retry shortly if the request was just made)",
        )
    return found
