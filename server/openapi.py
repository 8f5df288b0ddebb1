"""The OpenAPI document: request bodies described with the served model's own fields.

Each route's 200 answer and its errors are described too, in its protocol's shape (Quire's
``{"error": {"code", "message", "details"}}``, MLflow's ``{"error_code", "message"}`` on
/invocations, V2's ``{"error"}`` on /v2), and the API key (``X-API-Key`` or a bearer token) as
the guarded routes' security when the server has one.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from lib.data.schema import ColumnSchema
from lib.serving.contract import MAX_ID_CHARS, MAX_ID_INT, date_example, refuses_null
from server.deps import require_api_key
from server.errors import protocol_of
from server.state import ServingState

_JSON_TYPES = {
    "numeric": "number",
    "boolean": "boolean",
    "datetime": "string",
    "categorical": "string",
}


def _feature(col: ColumnSchema) -> dict[str, Any]:
    """Return the JSON schema of one feature field (null allowed unless the column refuses it)."""
    kind = _JSON_TYPES[col.kind]
    prop: dict[str, Any] = {"type": kind if refuses_null(col) else [kind, "null"]}
    notes = []
    if col.kind == "datetime":
        prop["format"] = "date"  # what generated examples use; date-times are accepted too
        notes.append(f"a date such as {date_example(col.format)} (ISO 8601, no relative dates)")
    if col.categories:
        notes.append("seen in training: " + ", ".join(col.categories[:50]))
    if col.min is not None and col.max is not None:
        notes.append(f"seen in training: {col.min:g} to {col.max:g}")
    if refuses_null(col):
        notes.append("never null (declared nullable: false)")
    if notes:
        prop["description"] = "; ".join(notes)
    return prop


def row_schema(state: ServingState) -> dict[str, Any]:
    """Return the JSON schema of one input row, from the served model's training schema."""
    model = state.current()
    properties: dict[str, Any] = {}
    for col in model.schema.features:
        properties[col.name] = _feature(col)
    schema = model.schema
    excluded: dict[str, str] = getattr(schema, "excluded", None) or {}
    for name, reason in excluded.items():
        properties[name] = {"description": f"not a model input ({reason}): accepted, ignored"}
    if schema.id_column:
        properties[schema.id_column] = {
            "type": ["string", "integer", "null"],
            "maxLength": MAX_ID_CHARS,
            "minimum": -MAX_ID_INT + 1,
            "maximum": MAX_ID_INT - 1,
            "description": (
                "the row's id (optional): never given to the model, echoed as the answer's "
                '"id" and written to the prediction log; POST /feedback takes labels by it'
            ),
        }
    return {
        "title": "Row",
        "type": "object",
        "properties": properties,
        "required": model.schema.names(),
        "example": state.example_rows(model)[0],
    }


_STRING = {"type": "string"}
_OPTIONAL_TEXT = {"type": ["string", "null"]}
_LIST = {"type": "array"}
_ID = {"type": ["string", "integer", "number", "null"]}
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "QuireError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": _STRING,
                    "message": _STRING,
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["field", "reason"],
                            "properties": {
                                "row": {"type": "integer"},
                                "field": _STRING,
                                "reason": _STRING,
                            },
                        },
                    },
                },
            }
        },
    },
    "MlflowError": {
        "type": "object",
        "required": ["error_code", "message"],
        "properties": {"error_code": _STRING, "message": _STRING},
    },
    "V2Error": {"type": "object", "required": ["error"], "properties": {"error": _STRING}},
}
_PROTOCOL_ERROR = {"quire": "QuireError", "mlflow": "MlflowError", "v2": "V2Error"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_PREDICTION = {
    "type": "object",
    "required": ["prediction"],
    "properties": {
        "prediction": {"type": ["string", "number", "integer", "boolean"]},
        "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
        "id": _ID,
        "unknown_categories": {"type": "array", "items": _STRING},
    },
}
ANSWER_SCHEMAS: dict[str, dict[str, Any]] = {
    "Predictions": _object(
        ["request_id", "model", "predictions"],
        request_id=_STRING,
        model=_object(["name", "version"], name=_OPTIONAL_TEXT, version=_OPTIONAL_TEXT),
        predictions={"type": "array", "items": _PREDICTION},
    ),
    "ModelInfo": _object(
        ["name", "version", "task", "schema"],
        name=_OPTIONAL_TEXT,
        version=_OPTIONAL_TEXT,
        task=_STRING,
        classes={"type": ["array", "null"]},
        threshold={"type": ["number", "null"]},
        schema={"type": "object"},
        lineage={"type": ["object", "null"]},
    ),
    "FeedbackAnswer": _object(
        ["accepted", "file"],
        accepted={"type": "integer"},
        file=_STRING,
        unknown_requests={"type": "integer"},
        unknown_request_ids={"type": "array", "items": _STRING},
        by_id={"type": "integer"},
        unmatched={"type": "integer"},
        unmatched_ids={"type": "array", "items": _STRING},
    ),
    "Lineage": _object(
        ["request_id", "time", "rows", "models", "monitoring"],
        request_id=_STRING,
        time=_STRING,
        rows=_LIST,
        models=_LIST,
        monitoring=_LIST,
    ),
    "Reloaded": _object(["status"], status=_STRING, name=_OPTIONAL_TEXT, version=_OPTIONAL_TEXT),
    "Ready": _object(["status"], status=_STRING, model=_OPTIONAL_TEXT, version=_OPTIONAL_TEXT),
    "MlflowPredictions": _object(
        ["predictions"], predictions=_LIST, ids={"type": "array", "items": _ID}, probabilities=_LIST
    ),
    "V2Metadata": _object(
        ["name", "platform", "inputs", "outputs"],
        name=_OPTIONAL_TEXT,
        versions=_LIST,
        platform=_STRING,
        inputs=_LIST,
        outputs=_LIST,
    ),
    "V2Ready": _object(["ready"], ready={"type": "boolean"}),
    "V2InferResponse": _object(
        ["model_name", "outputs"],
        model_name=_OPTIONAL_TEXT,
        model_version=_OPTIONAL_TEXT,
        outputs={
            "type": "array",
            "items": _object(
                ["name", "shape", "datatype", "data"],
                name=_STRING,
                shape={"type": "array", "items": {"type": "integer"}},
                datatype=_STRING,
                data=_LIST,
            ),
        },
    ),
}
_BODY = [400, 413, 415]  # the body is not JSON, too large, or another content type
# Each documented route: the schema of its 200 answer and the error statuses it can answer.
# 401 is added to the guarded routes when the server has an API key.
ROUTES: dict[tuple[str, str], tuple[str, list[int]]] = {
    ("post", "/predict"): ("Predictions", [*_BODY, 422, 503, 500]),
    ("post", "/predict/batch"): ("Predictions", [*_BODY, 422, 503, 500]),
    ("get", "/model"): ("ModelInfo", [503, 500]),
    ("post", "/feedback"): ("FeedbackAnswer", [*_BODY, 422, 503, 500]),
    ("get", "/lineage/{request_id}"): ("Lineage", [404, 422, 503, 500]),
    ("post", "/admin/reload"): ("Reloaded", [503, 500]),
    ("post", "/invocations"): ("MlflowPredictions", [*_BODY, 503, 500]),
    ("get", "/v2/models/{name}"): ("V2Metadata", [404, 503, 500]),
    ("post", "/v2/models/{name}/infer"): ("V2InferResponse", [*_BODY, 404, 503, 500]),
    ("get", "/v2/models/{name}/versions/{version}"): ("V2Metadata", [404, 503, 500]),
    ("get", "/v2/models/{name}/ready"): ("V2Ready", [404, 503, 500]),
    ("get", "/v2/models/{name}/versions/{version}/ready"): ("V2Ready", [404, 503, 500]),
    ("post", "/v2/models/{name}/versions/{version}/infer"): (
        "V2InferResponse",
        [*_BODY, 404, 503, 500],
    ),
    ("get", "/health/ready"): ("Ready", [503]),
    ("get", "/v2/health/ready"): ("V2Ready", []),  # its 503 is {"ready": false}
}
_MEANING = {
    400: "the body is not valid JSON, or not the protocol's shape",
    401: "missing or wrong API key",
    404: "no such request (or model)",
    413: "the body exceeds the server's size limit",
    415: "another content type than the route reads",
    422: "the input breaks the contract: each problem names its row and field",
    503: "the model is not loaded yet; retry shortly",
    500: "a fault of the server; its log has the details",
}
SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "the same key as a token"},
}
_KEY_NOTE = {
    True: " Every route but the probes (/health, /v2/health, /ping, /version) and these docs "
    "requires the API key: the X-API-Key header, or Authorization: Bearer <key>.",
    False: " This server has no API key configured (QUIRE_SERVER_API_KEY): no route asks for one.",
}


def guarded_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Return the (method, path) of every route that checks the API key (router's or own)."""
    guarded = set()
    for entry in app.routes:
        router = getattr(entry, "original_router", None)  # an included router (FastAPI >= 0.16x)
        shared = [d.dependency for d in getattr(router, "dependencies", [])]
        for route in router.routes if router is not None else [entry]:
            if not isinstance(route, APIRoute):
                continue
            calls = [*shared, *(d.call for d in route.dependant.dependencies)]
            if require_api_key in calls:
                guarded |= {(m.lower(), route.path_format) for m in route.methods or ()}
    return guarded


def _error(path: str, status: int) -> dict[str, Any]:
    """Return the documented error answer ``status`` of ``path``, in its protocol's shape."""
    name = _PROTOCOL_ERROR[protocol_of(path)]
    schema = {"$ref": f"#/components/schemas/{name}"}
    return {"description": _MEANING[status], "content": {"application/json": {"schema": schema}}}


def _responses(path: str, answer: str, errors: list[int]) -> dict[str, Any]:
    """Return an operation's documented responses: its 200 answer, its errors' bodies."""
    schema = {"$ref": f"#/components/schemas/{answer}"}
    ok = {"description": "Successful Response", "content": {"application/json": {"schema": schema}}}
    return {"200": ok, **{str(status): _error(path, status) for status in sorted(errors)}}


def document_contract(app: FastAPI, spec: dict[str, Any], has_key: bool) -> None:
    """Add the security schemes, and each route's answer and error schemas, to ``spec``."""
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(ERROR_SCHEMAS | ANSWER_SCHEMAS)
    components["securitySchemes"] = SECURITY_SCHEMES
    spec["info"]["description"] = (app.description or "") + _KEY_NOTE[has_key]
    guarded = guarded_routes(app) if has_key else set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            answer, errors = ROUTES.get((method, path), (None, []))
            if answer is not None:
                operation["responses"] = _responses(path, answer, errors)
            if (method, path) in guarded:
                operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
                operation["responses"]["401"] = _error(path, 401)
    ready = spec["paths"].get("/v2/health/ready", {}).get("get")
    if ready is not None:  # V2's readiness answers 503 with its own body
        ready["responses"]["503"] = {
            "description": "not ready: the model is not loaded yet",
            "content": ready["responses"]["200"]["content"],
        }
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, never answered
        schemas.pop(unused, None)


def document_model_inputs(app: FastAPI) -> None:
    """Make ``app.openapi`` describe bodies with the model's fields, answers and errors."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        spec = base()
        state: ServingState = app.state.serving
        document_contract(app, spec, bool(state.settings.api_key))
        if state.model is None:
            return spec
        spec["components"]["schemas"]["Row"] = row_schema(state)
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
