"""Liveness and readiness: Quire's, MLflow's (/ping, /version) and V2's (with its metadata)."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from server.deps import State
from server.errors import Fault, error_response

router = APIRouter(tags=["health"])


def _ready(state: State) -> JSONResponse:
    if state.model is None:
        return error_response(
            "/health/ready",
            Fault(503, "not_ready", "model not loaded yet", headers={"Retry-After": "5"}),
        )
    return JSONResponse(
        {"status": "ready", "model": state.model.name, "version": state.model.version}
    )


@router.get("/health/live")
async def live() -> dict[str, str]:
    """Answer 200 while the process is up."""
    return {"status": "live"}


@router.get("/health/ready")
async def ready(state: State) -> JSONResponse:
    """200 once the model is loaded and a warm-up prediction succeeded, else 503."""
    return _ready(state)


@router.get("/ping")
async def ping(state: State) -> PlainTextResponse:
    """MLflow scoring protocol health check."""
    return PlainTextResponse("\n", status_code=200 if state.model is not None else 503)


@router.get("/version")
async def mlflow_version() -> PlainTextResponse:
    """Return the MLflow version the model was logged with (MLflow scoring protocol)."""
    return PlainTextResponse(version("mlflow"))


@router.get("/v2")
async def v2_server() -> dict[str, object]:
    """Open Inference Protocol server metadata: name, version and the extensions implemented."""
    return {"name": "quire", "version": version("quire"), "extensions": ["binary_tensor_data"]}


@router.get("/v2/health/live")
async def v2_live() -> dict[str, bool]:
    """Open Inference Protocol liveness."""
    return {"live": True}


@router.get("/v2/health/ready")
async def v2_ready(state: State) -> JSONResponse:
    """Open Inference Protocol readiness."""
    return JSONResponse(
        {"ready": state.model is not None}, status_code=200 if state.model is not None else 503
    )
