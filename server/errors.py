"""Errors as HTTP answers: one status per error class, one body per protocol.

Each error class gets the status that says whose fault it is; Quire's own routes answer it as is,
the MLflow scoring protocol (``/invocations``) and the Open Inference Protocol (``/v2/...``)
answer a 422 as 400, as ``mlflow models serve`` and V2 servers do for any bad input.

| error                                  | meaning                         | Quire | MLflow | V2  |
|----------------------------------------|---------------------------------|-------|--------|-----|
| ``InputError`` (a DataValidationError) | rows break the input contract   | 422   | 400    | 400 |
| ``RequestValidationError``             | the body has the wrong shape    | 422   | 400    | 400 |
| ``DataValidationError``                | the request's data is unusable  | 422   | 400    | 400 |
| ``DataValidationError`` with a path    | a file on the server is bad     | 500   | 500    | 500 |
| ``ParamsError``                        | a value the request chose       | 400   | 400    | 400 |
| ``ParamsError`` with a source          | the server's own parameters     | 500   | 500    | 500 |
| ``ModelNotFoundError``                 | no model (no champion) to serve | 503   | 503    | 503 |
| ``ServerUnavailableError``             | a service it relies on is down  | 503   | 503    | 503 |
| ``StageError``, other ``QuireError``   | a fault of the server           | 500   | 500    | 500 |
| ``HTTPException`` (401, 404, 413, ...) | as raised                       | its   | its    | its |
| a body not sent in time (middleware)   | the client stalled              | 408   | 408    | 408 |
| any other exception                    | a bug                           | 500   | 500    | 500 |

The server loads its parameters before it serves; a ``ParamsError`` carrying a ``source`` (a
file, an environment variable, ``-p``) is therefore its own configuration, not the request's.

Bodies are stable JSON. Quire: ``{"error": {"code", "message", "details"?}}``; MLflow, as
``mlflow models serve``: ``{"error_code", "message"}`` (``INVALID_PARAMETER_VALUE`` for rows that
break the contract, ``BAD_REQUEST`` for a body that is not rows, ...); V2, the protocol's
``inference_error_response``: ``{"error": "message"}``. No body carries a stack trace; messages
are cut at 1,000 characters, and a 5xx that is the server's own fault says only that the server
log has the details.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, replace
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lib.core.errors import (
    DataValidationError,
    ModelNotFoundError,
    ParamsError,
    QuireError,
    ServerUnavailableError,
)
from lib.core.logs import get_logger
from lib.serving.batch import InputError
from server.metrics import Metrics

log = get_logger("quire.server")

Protocol = Literal["quire", "mlflow", "v2"]
MAX_MESSAGE = 1000
_INTERNAL = "internal error; the server log has the details"
_TRACE_FRAMES, _TRACE_CHARS = 12, 6000  # of a bug's traceback in the server log
_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
          408: "request_timeout", 413: "body_too_large", 415: "unsupported_media_type",
          422: "invalid_input", 500: "internal", 503: "not_ready"}  # fmt: skip
# MLflow's error codes for HTTP statuses (mlflow.exceptions); other 4xx: BAD_REQUEST
_MLFLOW_CODES = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "ENDPOINT_NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 503: "TEMPORARILY_UNAVAILABLE"}  # fmt: skip
_UNREADABLE = {"invalid_format", "invalid_csv", "invalid_request"}  # not rows at all


@dataclass(frozen=True)
class Fault:
    """What went wrong, as the client may read it."""

    status: int
    code: str
    message: str
    details: list[dict[str, Any]] | None = None
    headers: dict[str, str] | None = None  # e.g. Allow (405), WWW-Authenticate (401), Retry-After


_RETRY_AFTER = {"Retry-After": "5"}  # seconds: a model (re)loading, the server starting


def fault_of(exc: Exception) -> Fault:
    """Return the status, code and message for ``exc`` (the table of the module docstring)."""
    if isinstance(exc, InputError):
        details = [{"row": p.row, "field": p.field, "reason": p.reason} for p in exc.problems]
        return Fault(422, exc.code, exc.message, details)
    if isinstance(exc, RequestValidationError):
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "reason": str(e["msg"])}
            for e in exc.errors()[:20]
        ]
        message = "the request does not have the expected shape"
        return Fault(422, "invalid_request", message, details)
    if isinstance(exc, StarletteHTTPException):
        code = _CODES.get(exc.status_code, "error")
        return Fault(
            exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None
        )
    if isinstance(exc, DataValidationError) and exc.path is None:
        return Fault(422, exc.check or "invalid_data", exc.message)
    if isinstance(exc, ParamsError) and exc.source is None:
        return Fault(400, "invalid_parameter", exc.message)
    if isinstance(exc, ModelNotFoundError):
        return Fault(503, "model_unavailable", exc.message, headers=_RETRY_AFTER)
    if isinstance(exc, ServerUnavailableError):
        return Fault(503, "unavailable", exc.message, headers=_RETRY_AFTER)
    if isinstance(exc, QuireError):
        return Fault(500, "server_error", _INTERNAL)
    return Fault(500, "internal", _INTERNAL)


def protocol_of(path: str) -> Protocol:
    """Return the protocol a request path belongs to (its errors answer in that shape)."""
    if path == "/invocations":
        return "mlflow"
    if path == "/v2" or path.startswith("/v2/"):
        return "v2"
    return "quire"


def quire_body(fault: Fault) -> dict[str, Any]:
    """Return Quire's body: ``{"error": {"code", "message", "details"?}}``."""
    error: dict[str, Any] = {"code": fault.code, "message": fault.message}
    if fault.details is not None:
        error["details"] = fault.details
    return {"error": error}


def mlflow_body(fault: Fault) -> dict[str, Any]:
    """Return the MLflow protocol's body, as ``mlflow models serve`` answers errors.

    Rows that break the input contract are ``INVALID_PARAMETER_VALUE`` (as MLflow's schema
    enforcement answers them), a body that cannot be read as rows ``BAD_REQUEST``.
    """
    if fault.status == 422:
        code = "BAD_REQUEST" if fault.code in _UNREADABLE else "INVALID_PARAMETER_VALUE"
    elif fault.status in _MLFLOW_CODES:
        code = _MLFLOW_CODES[fault.status]
    else:
        code = "BAD_REQUEST" if fault.status < 500 else "INTERNAL_ERROR"
    return {"error_code": code, "message": fault.message}


def v2_body(fault: Fault) -> dict[str, Any]:
    """Return the V2 protocol's ``inference_error_response``: ``{"error": "message"}``."""
    return {"error": fault.message}


_BODIES = {"quire": quire_body, "mlflow": mlflow_body, "v2": v2_body}


def error_response(path: str, fault: Fault) -> JSONResponse:
    """Answer ``fault`` in the shape and status of the protocol that ``path`` belongs to."""
    protocol = protocol_of(path)
    status = 400 if fault.status == 422 and protocol != "quire" else fault.status
    if len(fault.message) > MAX_MESSAGE:
        fault = replace(fault, message=fault.message[: MAX_MESSAGE - 1] + "…")
    return JSONResponse(_BODIES[protocol](fault), status_code=status, headers=fault.headers)


def answer_error(request: Request, exc: Exception, metrics: Metrics) -> JSONResponse:
    """Count, log and answer ``exc`` raised while serving ``request``.

    Called by the app's exception handlers and by the outermost middleware for an exception
    that escapes every handler (a bug in a route), so that each is answered and counted alike.
    """
    fault = fault_of(exc)
    if fault.status in (400, 422) and not isinstance(exc, StarletteHTTPException):
        reason = "request_shape" if isinstance(exc, RequestValidationError) else fault.code
        metrics.invalid.labels(reason).inc()
    if fault.status >= 500 and not isinstance(exc, StarletteHTTPException):
        error = f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE]
        log.error("request_failed", path=request.url.path, status=fault.status, error=error,
                  trace=None if isinstance(exc, QuireError) else _trace(exc))  # fmt: skip
    return error_response(request.url.path, fault)


def _trace(exc: Exception) -> str:
    """Return the last frames of a bug's traceback, for the server log.

    Formatted here rather than passed as ``exc_info``: the log's renderers would print each
    frame's locals, i.e. the request's rows, at length (seconds for a deeply nested body).
    """
    return "".join(traceback.format_exception(exc, limit=-_TRACE_FRAMES))[-_TRACE_CHARS:]


def install_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Answer every error of ``app`` through :func:`answer_error`."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return answer_error(request, exc, metrics)

    for kind in (RequestValidationError, StarletteHTTPException, QuireError, Exception):
        app.add_exception_handler(kind, handle)
