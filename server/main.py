"""The FastAPI app: settings and params, the lifespan, error handlers, middleware, routers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

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
        docs_url=None,  # served from the installed package below, not from a CDN
        redoc_url=None,  # ReDoc has no bundle installed: one UI, that works offline
    )
    app.state.serving = ServingState(settings, params, metrics)
    install_handlers(app, metrics)
    for module in (health, predict, feedback, mlflow_protocol, v2, admin):
        app.include_router(module.router)
    document_model_inputs(app)
    serve_docs(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(
        GuardMiddleware,
        metrics=metrics,
        max_body=settings.max_body_bytes,
        timeout=settings.request_timeout_seconds,
    )
    return app


_ASSETS = "/docs/assets"


def serve_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` from the installed ``swagger-ui-bundle``: no CDN, no network.

    The bundled Swagger UI (4.x) renders OpenAPI 3.0 documents only and refuses FastAPI's 3.1
    ("does not specify a valid version field"), so it reads ``/docs/openapi.json``: the app's own
    document labelled 3.0.3, which it renders as is. ``/openapi.json`` itself stays 3.1.
    """
    app.mount(_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/docs/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{_ASSETS}/favicon-32x32.png",
        )

    @app.get("/docs/openapi.json", include_in_schema=False)
    async def docs_openapi() -> dict[str, Any]:
        return {**app.openapi(), "openapi": "3.0.3"}
