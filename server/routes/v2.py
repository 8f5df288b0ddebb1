"""The Open Inference Protocol (V2): model metadata and inference with one input per column."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request

from lib.serving.batch import InputError, Problem
from lib.serving.predictor import LoadedModel
from server.bodies import FastJSONResponse, json_body
from server.deps import Model, RequestId, State, require_api_key

router = APIRouter(tags=["open inference (v2)"], dependencies=[Depends(require_api_key)])
_TYPES = {"numeric": "FP64", "boolean": "BOOL", "categorical": "BYTES", "datetime": "BYTES"}


def _check_name(name: str, model: Model) -> None:
    if name != model.name:
        raise HTTPException(404, f"no model {name!r} here; this server serves {model.name!r}")


@router.get("/v2/models/{name}")
async def metadata(name: str, model: Model) -> dict[str, Any]:
    """Model metadata: inputs (one per column) and outputs."""
    _check_name(name, model)
    outputs = [
        {
            "name": "predict",
            "datatype": "FP64" if model.schema.task == "regression" else "BYTES",
            "shape": [-1],
        }
    ]
    if model.classes is not None:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(model.classes)]}
        )
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "sklearn",
        "inputs": [
            {"name": c.name, "datatype": _TYPES[c.kind], "shape": [-1]}
            for c in model.schema.features
        ],
        "outputs": outputs,
    }


def _rows(body: Any) -> list[dict[str, Any]]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise InputError(
            [Problem(0, "inputs", "expected a non-empty list of tensors")], "invalid_format"
        )
    columns: dict[str, list[Any]] = {}
    for tensor in inputs:
        if (
            not isinstance(tensor, dict)
            or "name" not in tensor
            or not isinstance(tensor.get("data"), list)
        ):
            raise InputError(
                [Problem(0, "inputs", "each input needs a name and a data list")], "invalid_format"
            )
        columns[str(tensor["name"])] = tensor["data"]
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise InputError(
            [Problem(0, "inputs", f"inputs have different lengths: {sorted(lengths)}")],
            "invalid_format",
        )
    n = lengths.pop()
    return [{k: v[i] for k, v in columns.items()} for i in range(n)]


def _outputs(
    model: LoadedModel, labels: np.ndarray, proba: np.ndarray | None, ids: list[Any] | None
) -> list[Any]:
    """Return the output tensors: ``predict``, ``predict_proba`` for a classifier, ``id``.

    ``id`` echoes the id column's input tensor, when the request sent one.
    """
    outputs: list[dict[str, Any]] = [
        {
            "name": "predict",
            "shape": [len(labels)],
            "datatype": "FP64" if model.schema.task == "regression" else "BYTES",
            "data": np.asarray(labels).tolist(),
        }
    ]
    if proba is not None:
        outputs.append(
            {
                "name": "predict_proba",
                "shape": list(proba.shape),
                "datatype": "FP64",
                "data": proba.ravel().tolist(),
            }
        )
    if ids is not None:
        outputs.append({"name": "id", "shape": [len(ids)], "datatype": "BYTES", "data": ids})
    return outputs


@router.post("/v2/models/{name}/infer")
async def infer(
    name: str, request: Request, state: State, model: Model, request_id: RequestId
) -> FastJSONResponse:
    """Inference request with one input tensor per column.

    Outputs: ``predict`` (a classifier's labels at the model version's decision threshold, the
    same as every other route), ``predict_proba`` (rows x classes, in the order of ``GET
    /model``'s classes) for a classifier, and ``id`` echoing the id column's input tensor when
    the request sends one (never a model input).
    """
    _check_name(name, model)
    body = await json_body(request)
    batch = state.check(_rows(body), model)
    labels, proba = await state.predict(request_id, model, batch)
    return FastJSONResponse(
        {
            "model_name": model.name,
            "model_version": model.version,
            "id": body.get("id", request_id),  # the protocol echoes the client's id
            "outputs": _outputs(model, labels, proba, batch.ids),
        }
    )
