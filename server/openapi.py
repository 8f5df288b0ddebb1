"""The OpenAPI document: request bodies described with the served model's own fields."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lib.data.schema import ColumnSchema
from lib.serving.contract import MAX_ID_CHARS, MAX_ID_INT, date_example, refuses_null
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


def document_model_inputs(app: FastAPI) -> None:
    """Make ``app.openapi`` describe /predict bodies with the model's fields, once it is loaded."""
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
