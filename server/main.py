"""The FastAPI app: model loaded in the lifespan, stable JSON errors, metrics, body-size limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lib.core.errors import QuireError
from lib.core.layout import predictions_dir
from lib.core.logs import get_logger
from lib.core.params import Params, load_params
from lib.serving.batch import InputError
from lib.serving.loading import registered_version
from server.batcher import MicroBatcher
from server.config import Settings
from server.deps import require_api_key
from server.metrics import Metrics
from server.predlog import PredictionLog
from server.routes import feedback, health, mlflow_protocol, predict, v2
from server.state import ServingState

log = get_logger("quire.server")
_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
          413: "body_too_large", 415: "unsupported_media_type", 422: "invalid_input",
          503: "not_ready"}  # fmt: skip


def error_body(
    status: int, message: str, code: str | None = None, details: Any = None
) -> JSONResponse:
    """Return the one error shape every route returns."""
    body: dict[str, Any] = {
        "error": {"code": code or _CODES.get(status, "error"), "message": message}
    }
    if details is not None:
        body["error"]["details"] = details
    return JSONResponse(body, status_code=status)


class GuardMiddleware:
    """Request ids, Prometheus counts and latency, and the body-size limit (pure ASGI: cheap)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await error_body(
                413, f"the body exceeds {self.max_body:,} bytes; send smaller batches"
            )(scope, receive, send)
            self._count(scope, 413, started)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise _TooLarge
            return message

        request_id = uuid.uuid4().hex

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                # every answer names its request: the prediction log's key for labels and lineage
                # (the MLflow protocol's body has no room for it)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        scope.setdefault("state", {})["request_id"] = request_id
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            status["code"] = 413
            await error_body(
                413, f"the body exceeds {self.max_body:,} bytes; send smaller batches"
            )(scope, receive, send)
        finally:
            self.metrics.in_flight.dec()
        self._count(scope, status["code"], started)

    def _count(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", "unmatched")
        self.metrics.requests.labels(path, str(status)).inc()
        self.metrics.latency.labels(path).observe(time.perf_counter() - started)


class _TooLarge(Exception):
    pass


def _install_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        metrics.invalid.labels(exc.code).inc()
        details = [{"row": p.row, "field": p.field, "reason": p.reason} for p in exc.problems]
        return error_body(422, str(exc), exc.code, details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.invalid.labels("request_shape").inc()
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]}
            for e in exc.errors()[:20]
        ]
        return error_body(
            422, "the request does not have the expected shape", "invalid_request", details
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_body(exc.status_code, str(exc.detail))

    @app.exception_handler(QuireError)
    async def _quire(request: Request, exc: QuireError) -> JSONResponse:
        return error_body(503, exc.message, "model_unavailable")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal_error", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return error_body(500, "internal error; the server log has the details", "internal")


def _lifespan(
    settings: Settings, params: Params
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: ServingState = app.state.serving
        model = await state.reload()  # the same load, warm-up and swap as /admin/reload
        if settings.prediction_log:
            folder = predictions_dir(params.project.data_dir, state.log_name(model))
            state.predlog = PredictionLog(
                folder, settings.log_flush_rows, settings.log_flush_seconds,
                on_drop=lambda n: state.metrics.log_drops.inc(n),
            )  # fmt: skip
            state.predlog.start()
        state.batcher = MicroBatcher(
            state.current, state.run_model, settings.batch_wait_ms, settings.batch_max_rows
        )
        state.batcher.start()
        log.info("serving", model=model.name, version=model.version, uri=model.uri)
        poller = (
            asyncio.create_task(_poll_alias(state), name="alias-poller")
            if settings.poll_seconds > 0
            else None
        )
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            await state.batcher.stop()
            if state.predlog is not None:
                await asyncio.to_thread(state.predlog.close)
            state.metrics.ready.set(0)

    return lifespan


async def _poll_alias(state: ServingState) -> None:
    """Reload whenever the served alias (champion by default) moves to another version."""
    settings = state.settings
    while True:
        await asyncio.sleep(settings.poll_seconds)
        try:
            now = await asyncio.to_thread(registered_version, state.params, settings.model_uri)
            if now is not None and now != state.current().version:
                fresh = await state.reload()
                log.info("alias_moved", model=fresh.name, version=fresh.version)
        except Exception as exc:  # the registry may be briefly unreachable: keep serving
            log.warning("alias_poll_failed", error=f"{type(exc).__name__}: {exc}"[:300])


def row_schema(state: ServingState) -> dict[str, Any]:
    """JSON schema of one input row, from the served model's training schema."""
    model = state.current()
    types = {
        "numeric": "number",
        "boolean": "boolean",
        "datetime": "string",
        "categorical": "string",
    }
    properties: dict[str, Any] = {}
    for col in model.schema.features:
        prop: dict[str, Any] = {"type": [types[col.kind], "null"]}
        if col.kind == "datetime":
            prop["format"] = "date"
        if col.categories:
            prop["description"] = "seen in training: " + ", ".join(col.categories[:50])
        if col.min is not None and col.max is not None:
            prop["description"] = f"seen in training: {col.min:g} to {col.max:g}"
        properties[col.name] = prop
    return {
        "title": "Row",
        "type": "object",
        "properties": properties,
        "required": model.schema.names(),
        "example": state.example_rows(model)[0],
    }


def _model_openapi(app: FastAPI) -> None:
    """Document request bodies with the model's own fields (built once the model is loaded)."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        spec = base()
        state: ServingState = app.state.serving
        if state.model is None:
            return spec
        spec.setdefault("components", {}).setdefault("schemas", {})["Row"] = row_schema(state)
        ref = {"$ref": "#/components/schemas/Row"}
        bodies = {
            "/predict": ref,
            "/predict/batch": {
                "type": "array",
                "items": ref,
                "maxItems": state.settings.max_batch_rows,
            },
        }
        for path, schema in bodies.items():
            spec["paths"][path]["post"]["requestBody"]["content"] = {
                "application/json": {"schema": schema}
            }
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


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
        lifespan=_lifespan(settings, params),
    )
    app.state.serving = ServingState(settings, params, metrics)
    _install_handlers(app, metrics)
    for router in (
        health.router,
        predict.router,
        feedback.router,
        mlflow_protocol.router,
        v2.router,
    ):
        app.include_router(router)

    # guarded like the model's routes: Prometheus sends the key as a bearer token
    # (authorization.credentials in its scrape config)
    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(require_api_key)])
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    _model_openapi(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(GuardMiddleware, metrics=metrics, max_body=settings.max_body_bytes)
    return app
