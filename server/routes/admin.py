"""Operations: POST /admin/reload and the Prometheus scrape GET /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.deps import State, require_api_key

# guarded like the model's routes: Prometheus sends the key as a bearer token
# (authorization.credentials in its scrape config)
router = APIRouter(tags=["admin"], dependencies=[Depends(require_api_key)])


@router.post("/admin/reload")
async def reload(state: State) -> dict[str, Any]:
    """Load the model again (e.g. a new champion) and swap it in.

    Requests already running finish on the old model.
    """
    fresh = await state.reload()
    return {"status": "reloaded", "name": fresh.name, "version": fresh.version}


@router.get("/metrics", include_in_schema=False)
async def prometheus(state: State) -> Response:
    """Prometheus metrics of this server."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
