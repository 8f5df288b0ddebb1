"""Operations: POST /admin/reload and the Prometheus scrape GET /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from server.deps import State, require_api_key

# guarded like the model's routes: Prometheus sends the key as a bearer token
# (authorization.credentials in its scrape config)
router = APIRouter(tags=["admin"], dependencies=[Depends(require_api_key)])


@router.post("/admin/reload")
async def reload(state: State) -> dict[str, Any]:
    """Load the model again (e.g. a new champion) and swap it in, in every worker.

    Requests already running finish on the old model. Under several workers the others reload
    too; ``workers`` counts them, names those that failed or did not answer in time, and
    ``status`` is then ``partial`` (they go on serving the model they had).
    """
    fresh, acks, late = await state.reload_everywhere()
    failed = [{"pid": a.pid, "error": a.error} for a in acks if not a.ok]
    workers = {
        "total": 1 + len(acks) + len(late),
        "reloaded": 1 + sum(a.ok for a in acks),
        "failed": failed,
        "late": late,
    }
    status = "partial" if failed or late else "reloaded"
    return {"status": status, "name": fresh.name, "version": fresh.version, "workers": workers}


@router.get("/metrics", include_in_schema=False)
async def prometheus(state: State) -> Response:
    """Prometheus metrics of this server."""
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
