"""The FastAPI app: settings and params, the lifespan, error handlers, middleware, routers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from lib.core.params import Params, load_params
from server.config import Settings
from server.errors import install_handlers
from server.metrics import Metrics
from server.middleware import GuardMiddleware
from server.openapi import document_model_inputs
from server.routes import admin, feedback, health, mlflow_protocol, predict, v2
from server.state import ServingState


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model when the app starts (never at import); flush and stop when it ends."""
    state: ServingState = app.state.serving
    await state.start()
    try:
        yield
    finally:
        await state.stop()


def create_app(settings: Settings | None = None, params: Params | None = None) -> FastAPI:
    """Build the app; the model loads when the app starts (lifespan), never at import."""
    settings = settings or Settings()
    if params is None:
        presets = [settings.params_file] if settings.params_file else []
        params = load_params(presets, env=os.environ)
    metrics = Metrics()
    app = FastAPI(
        title="Quire model server",
        version="1",
        description=(
            "Serves the champion model: Quire's routes, the MLflow scoring protocol and the "
            "Open Inference Protocol (V2)."
        ),
        lifespan=lifespan,
    )
    app.state.serving = ServingState(settings, params, metrics)
    install_handlers(app, metrics)
    for module in (health, predict, feedback, mlflow_protocol, v2, admin):
        app.include_router(module.router)
    document_model_inputs(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(GuardMiddleware, metrics=metrics, max_body=settings.max_body_bytes)
    return app
