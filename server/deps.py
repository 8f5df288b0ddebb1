"""Request dependencies: the serving state, a ready model, the request id, the API key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from lib.serving.predictor import LoadedModel
from server.state import ServingState


async def get_state(request: Request) -> ServingState:
    """Return the app's serving state."""
    state: ServingState = request.app.state.serving
    return state


State = Annotated[ServingState, Depends(get_state)]


async def require_model(state: State) -> LoadedModel:
    """Return the served model, or 503 while none is loaded."""
    if state.model is None:
        raise HTTPException(
            503, "the model is not loaded yet; retry shortly", headers={"Retry-After": "5"}
        )
    return state.model


Model = Annotated[LoadedModel, Depends(require_model)]


async def get_request_id(request: Request) -> str:
    """Return the id the middleware gave this request (also its ``X-Request-Id`` header)."""
    request_id: str = request.scope["state"]["request_id"]
    return request_id


RequestId = Annotated[str, Depends(get_request_id)]


async def require_api_key(request: Request, state: State) -> None:
    """401 unless the request carries the configured key (``X-API-Key`` or a bearer token)."""
    key = state.settings.api_key
    if not key:
        return
    sent = request.headers.get("x-api-key") or request.headers.get(
        "authorization", ""
    ).removeprefix("Bearer ")
    if not hmac.compare_digest(sent.encode(), key.encode()):
        raise HTTPException(
            401,
            "missing or wrong API key; send it in the X-API-Key header",
            headers={"WWW-Authenticate": 'Bearer realm="quire"'},
        )
