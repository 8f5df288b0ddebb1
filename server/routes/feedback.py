"""Ground truth back from the business: POST /feedback (by request id or id); GET /lineage."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request

from lib.core.contracts import predlog
from lib.core.layout import Layout
from lib.data import feedback
from lib.loop import lineage
from lib.serving.batch import InputError, Problem
from lib.serving.contract import valid_id as _id
from lib.serving.predictor import LoadedModel
from server.bodies import json_body
from server.deps import Model, State, require_api_key
from server.state import ServingState


@contextlib.asynccontextmanager
async def _index_at_start(app: FastAPI) -> AsyncIterator[None]:
    """Build the prediction log's index when the server starts, in the background.

    Runs once the app's own start has loaded the model; lookups made meanwhile wait for it.
    """
    state: ServingState = app.state.serving
    build = None
    if state.model is not None and state.settings.prediction_log:
        index = _index(state, state.model)
        build = asyncio.create_task(asyncio.to_thread(index.refresh), name="log-index")
    yield
    if build is not None:
        await build  # a build still running when the server stops: let it end


router = APIRouter(
    tags=["feedback"], dependencies=[Depends(require_api_key)], lifespan=_index_at_start
)

_LABELS_SCHEMA = {
    "type": "object",
    "required": ["labels"],
    "properties": {
        "allow_unknown": {
            "type": "boolean",
            "default": False,
            "description": "save labels by request_id even for requests this server never "
            "logged (else 422 naming them)",
        },
        "labels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["label"],
                "properties": {
                    "request_id": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": lineage.MAX_REQUEST_ID_CHARS,
                    },
                    "row": {"type": "integer", "minimum": 0, "default": 0},
                    "id": {
                        "type": ["string", "integer"],
                        "description": "instead of request_id and row: the row's id column "
                        "value, as sent with the prediction",
                    },
                    "label": {"description": "the true value: one of the model's classes"},
                },
            },
        },
    },
}
_DOC = {
    "description": (
        "Labels for served rows, each by request_id (and row: the row's position in a batch "
        "request, 0 by default) or by id (the id column's value the row was sent with)."
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
            raise InputError(
                [Problem(index, "label", f"expected a number, got {type(value).__name__}")]
            )
        return float(value)
    known = {str(c): c for c in model.classes}
    if not isinstance(value, str | int | float | bool):  # str() of a deep list would recurse
        reason = f"expected one of the model's classes {list(known)}, got {type(value).__name__}"
        raise InputError([Problem(index, "label", reason)])
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


def _key(entry: dict[str, Any], index: int, id_column: str | None) -> tuple[Any, int, Any]:
    """Return (request_id, row, id) of one label entry, or raise naming the entry and field."""
    if "id" in entry:
        if "request_id" in entry:
            reason = "give request_id (and row) or id, not both"
            raise InputError([Problem(index, "id", reason)])
        if id_column is None:
            reason = "this model has no id column (data.id_column); label by request_id and row"
            raise InputError([Problem(index, "id", reason)])
        key = _id(entry["id"])
        if isinstance(key, tuple) or key is None:
            raise InputError([Problem(index, "id", key[0] if key else "expected the row's id")])
        return None, 0, predlog.id_key(key)
    request_id, row = entry.get("request_id"), entry.get("row", 0)
    if not isinstance(request_id, str) or not request_id.strip():
        reason = "expected the request_id of a prediction" + (" or its id" if id_column else "")
        raise InputError([Problem(index, "request_id", reason)])
    if len(request_id) > lineage.MAX_REQUEST_ID_CHARS:
        raise InputError([Problem(index, "request_id", _too_long(request_id))])
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        raise InputError([Problem(index, "row", "expected a row position >= 0")])
    return request_id, row, None


def _frame(body: Any, model: LoadedModel, limit: int) -> pd.DataFrame:
    entries = body.get("labels") if isinstance(body, dict) else None
    if isinstance(body, dict) and entries is None and ("request_id" in body or "id" in body):
        entries = [body]
    if not isinstance(entries, list) or not entries:
        raise InputError([Problem(0, "labels", 'expected {"labels": [{"request_id", "label"}]}')])
    if len(entries) > limit:
        raise InputError(
            [Problem(0, "labels", f"{len(entries)} labels; at most {limit} per request")],
            code="too_many_rows",
        )
    id_column = model.schema.id_column
    keys, values = [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InputError([Problem(i, "", "expected an object")])
        keys.append(_key(entry, i, id_column))
        if "label" not in entry:
            raise InputError([Problem(i, "label", "missing: the true value for that row")])
        values.append(_label(entry["label"], model, i))
    request_ids, rows, ids = zip(*keys, strict=True)
    frame = pd.DataFrame({"request_id": list(request_ids), "row": list(rows)})
    if id_column:
        frame[id_column] = pd.Series(list(ids), dtype=object)
    frame[model.schema.target] = values
    return frame


def _too_long(request_id: str) -> str:
    return (
        f"a request id has at most {lineage.MAX_REQUEST_ID_CHARS} characters, got "
        f"{len(request_id):,}; send the X-Request-ID header of the answer"
    )


def _allow_unknown(body: Any) -> bool:
    flag = body.get("allow_unknown", False) if isinstance(body, dict) else False
    if not isinstance(flag, bool):
        raise InputError([Problem(0, "allow_unknown", f"expected true or false, got {flag!r}")])
    return flag


def _index(state: ServingState, model: LoadedModel) -> feedback.LogIndex:
    """Return the index of the served model's prediction log (request ids, and the ids)."""
    layout = Layout.of(state.params, model=state.log_name(model))
    id_column = model.schema.id_column
    return feedback.log_index(layout.predictions, (predlog.REQUEST_ID, *filter(None, [id_column])))


async def _unknown_requests(
    state: ServingState, model: LoadedModel, labels: pd.DataFrame
) -> list[str]:
    """Return the labels' request ids that neither the log nor the requests served lately hold."""
    asked = labels["request_id"].dropna().unique().tolist()
    recent = await state.served_lately(predlog.REQUEST_ID)  # maybe not in the log's parts yet
    rest = [r for r in asked if r not in recent]
    if not rest:
        return []
    found = await asyncio.to_thread(_index(state, model).known, predlog.REQUEST_ID, rest)
    return [r for r in rest if r not in found]


def _refuse_unknown(labels: pd.DataFrame, unknown: list[str], logging: bool) -> None:
    """Raise naming the label entries (the first 20) whose request id was never served."""
    missing = set(unknown)
    entries = [i for i, r in enumerate(labels["request_id"].tolist()) if r in missing]
    reason = (
        "no request with this id was served (its id is the X-Request-ID header of the answer); "
        'check it, or send "allow_unknown": true to save the label anyway'
    )
    if not logging:
        reason += " (this server does not log predictions: QUIRE_SERVER_PREDICTION_LOG=false)"
    problems = [
        Problem(i, "request_id", f"{labels['request_id'].iat[i]!r}: {reason}") for i in entries
    ]
    raise InputError(problems[:20], code="unknown_request_id")


@router.post("/feedback", openapi_extra={"requestBody": _DOC})
async def post_feedback(request: Request, state: State, model: Model) -> dict[str, Any]:
    """Save true labels for served rows; the monitor stage and ``--retrain`` join them.

    A label by ``request_id`` must name a request this server logged (in the prediction log,
    or served lately and not yet flushed): else 422 ``unknown_request_id`` naming the entries,
    unless the body sets ``"allow_unknown": true`` (the answer then counts them in
    ``unknown_requests`` and names the first 20 in ``unknown_request_ids``). Labels by id are
    saved even when no logged row has that id: ``unmatched`` counts the ids that neither the
    prediction log nor the rows served lately hold, and ``unmatched_ids`` names the first 20;
    their rows may be served later.
    """
    body = await json_body(request)
    allow_unknown = _allow_unknown(body)
    labels = _frame(body, model, state.settings.max_batch_rows)
    unknown = await _unknown_requests(state, model, labels)
    if unknown and not allow_unknown:
        _refuse_unknown(labels, unknown, state.settings.prediction_log)
    layout = Layout.of(state.params, model=state.log_name(model))
    path = await asyncio.to_thread(feedback.save_labels, layout.feedback, labels)
    answer: dict[str, Any] = {"accepted": len(labels), "file": path.name}
    if unknown:
        answer.update(unknown_requests=len(unknown), unknown_request_ids=unknown[:20])
    id_column = model.schema.id_column
    if id_column:
        ids = labels[id_column].dropna().tolist()
        recent = await state.served_lately(id_column)  # maybe not in the log's parts yet
        unmatched = await asyncio.to_thread(
            feedback.unmatched_ids,
            layout.predictions,
            id_column,
            [i for i in ids if i not in recent],
        )
        answer.update(by_id=len(ids), unmatched=len(unmatched), unmatched_ids=unmatched[:20])
    return answer


@router.get("/lineage/{request_id}")
async def get_lineage(request_id: str, state: State, model: Model) -> dict[str, Any]:
    """Return where a prediction came from.

    The model version, its MLflow run, training data and params, and the monitoring runs that
    saw it. The log's index names the files to read; a request id longer than
    128 characters is refused (422), a request served but not yet flushed to the log is 404
    with a message to retry shortly.
    """
    if len(request_id) > lineage.MAX_REQUEST_ID_CHARS:
        raise HTTPException(422, _too_long(request_id))
    found = await asyncio.to_thread(
        lineage.lineage, state.params, state.log_name(model), request_id, _index(state, model)
    )
    if found is not None:
        return found
    if request_id in await state.served_lately(predlog.REQUEST_ID):
        raise HTTPException(
            404,
            f"request {request_id!r} was served moments ago and is not in the prediction log "
            "yet (it is written every few seconds); retry shortly",
        )
    raise HTTPException(
        404,
        f"no logged prediction has request_id {request_id!r}; check the id (the X-Request-ID "
        "header of the answer)",
    )
