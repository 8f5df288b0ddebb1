"""The Open Inference Protocol (V2): model metadata, readiness and inference, one input per column.

Implements the protocol's HTTP/REST API and its binary tensor data extension, so that the
protocol's own clients (``tritonclient.http`` and the like) work unmodified: a request with an
``Inference-Header-Content-Length`` header is that many bytes of JSON followed by the raw
tensors, in input order, of the inputs that carry ``parameters.binary_data_size`` (BYTES as
4-byte little-endian length-prefixed strings, other types little-endian); outputs come back
raw when ``parameters.binary_data`` (per requested output) or ``binary_data_output`` (per
request) asks for it. Every error under ``/v2`` is ``{"error": "message"}``.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from lib.core.errors import ParamsError
from lib.serving.batch import InputError, Problem
from lib.serving.predictor import LoadedModel
from server.bodies import FastJSONResponse, json_value, media_type
from server.deps import Model, RequestId, State, require_api_key

router = APIRouter(tags=["open inference (v2)"], dependencies=[Depends(require_api_key)])

# little-endian NumPy types of the protocol's fixed-size datatypes (BF16 has none)
NUMPY_TYPES = {
    "BOOL": "?", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "UINT8": "<u1",
    "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip
_INTEGERS = {t for t in NUMPY_TYPES if "INT" in t}
_NUMBERS = {"FP16", "FP32", "FP64", *_INTEGERS}
# the datatypes each kind of column accepts; the first is the one metadata declares
_ACCEPTED = {
    "numeric": ["FP64", *sorted(_NUMBERS - {"FP64"})],
    "boolean": ["BOOL"],
    "categorical": ["BYTES"],
    "datetime": ["BYTES"],
}
_ID_TYPES = ["BYTES", *sorted(_INTEGERS)]
_LENGTH = struct.Struct("<I")  # the length prefix of each BYTES element
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}  # zlib's wbits for each


def _bad(message: str) -> ParamsError:
    """Return the error for a request the protocol cannot read (400, ``{"error": message}``)."""
    return ParamsError(message, key="v2")


# ----------------------------------------------------------------------------- names, versions
def served_name(state: State, model: LoadedModel) -> str:
    """Return the model's name under /v2 (its registered name, else the project's)."""
    return state.log_name(model)


def served_version(model: LoadedModel) -> str:
    """Return the model's version under /v2 ("1" for a model served from a folder)."""
    return str(model.version or "1")


def _check(state: State, model: LoadedModel, name: str, version: str | None) -> None:
    """404 unless ``name`` (and ``version``, when given) is the served model."""
    mine = served_name(state, model)
    if name != mine:
        raise HTTPException(404, f"no model {name!r} here; this server serves {mine!r}")
    if version is not None and version != served_version(model):
        raise HTTPException(
            404,
            f"model {mine!r} has no version {version!r} here; this server serves version "
            f"{served_version(model)!r}",
        )


# ----------------------------------------------------------------------------- metadata
def label_type(model: LoadedModel) -> str:
    """Return the datatype of the ``predict`` output, as its values are sent.

    FP64 for a regressor; for a classifier BOOL or INT64 when its classes are so, else BYTES
    (the labels as strings).
    """
    classes = model.classes
    if classes is None:
        return "FP64"
    if all(isinstance(c, bool | np.bool_) for c in classes):
        return "BOOL"
    if all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in classes):
        return "INT64"
    return "BYTES"


def _output_names(model: LoadedModel) -> list[str]:
    return ["predict"] if model.classes is None else ["predict", "predict_proba"]


def _metadata(state: State, model: LoadedModel) -> dict[str, Any]:
    outputs = [{"name": "predict", "datatype": label_type(model), "shape": [-1]}]
    if model.classes is not None:
        shape = [-1, len(model.classes)]
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": shape})
    return {
        "name": served_name(state, model),
        "versions": [served_version(model)],
        "platform": "sklearn",
        "inputs": [
            {"name": c.name, "datatype": _ACCEPTED[c.kind][0], "shape": [-1]}
            for c in model.schema.features
        ],
        "outputs": outputs,
    }


@router.get("/v2/models/{name}")
async def metadata(name: str, state: State, model: Model) -> dict[str, Any]:
    """Model metadata: inputs (one per column, shape ``[-1]``) and outputs, typed as sent.

    A numeric input also takes FP32 and the INT types, a date one BYTES (ISO 8601 strings).
    """
    _check(state, model, name, None)
    return _metadata(state, model)


@router.get("/v2/models/{name}/versions/{version}")
async def version_metadata(name: str, version: str, state: State, model: Model) -> dict[str, Any]:
    """Model metadata of one version (404 for a version this server does not serve)."""
    _check(state, model, name, version)
    return _metadata(state, model)


@router.get("/v2/models/{name}/ready")
async def model_ready(name: str, state: State, model: Model) -> dict[str, Any]:
    """200 once the model is loaded (503 before, 404 for another model)."""
    _check(state, model, name, None)
    return {"name": name, "ready": True}


@router.get("/v2/models/{name}/versions/{version}/ready")
async def version_ready(name: str, version: str, state: State, model: Model) -> dict[str, Any]:
    """200 once this version is loaded (404 for a version this server does not serve)."""
    _check(state, model, name, version)
    return {"name": name, "ready": True}


# ----------------------------------------------------------------------------- request reading
def _decoded(raw: bytes, encoding: str, limit: int) -> bytes:
    """Return the body decompressed (``Content-Encoding`` gzip or deflate), at most ``limit`` bytes.

    The protocol's clients may compress requests; the size limit that the body met compressed
    holds for it decompressed too (413), so that a small body cannot expand without bound.
    """
    if encoding in ("", "identity"):
        return raw
    if encoding not in _ENCODINGS:
        raise HTTPException(415, f"Content-Encoding {encoding[:20]!r}: send gzip, deflate or none")
    inflate = zlib.decompressobj(_ENCODINGS[encoding])
    try:
        body = inflate.decompress(raw, limit + 1)
    except zlib.error:
        raise _bad(f"the body is not valid {encoding} data") from None
    if len(body) > limit:
        raise HTTPException(413, f"the body exceeds {limit:,} bytes once decompressed")
    return body


async def _request(request: Request, limit: int) -> tuple[dict[str, Any], bytes]:
    """Return the JSON part of an inference request and the raw tensor bytes after it.

    The protocol's clients send no content type: the body is JSON unless the
    ``Inference-Header-Content-Length`` header says where its JSON part ends.
    """
    kind = media_type(request)
    if kind not in ("", "application/json", "application/octet-stream"):
        raise HTTPException(415, "send the body as application/json (or with no content type)")
    encoding = request.headers.get("content-encoding", "").strip().lower()
    raw = _decoded(await request.body(), encoding, limit)
    header = request.headers.get("inference-header-content-length")
    if header is None:
        return _object(json_value(raw)), b""
    readable = header.isascii() and header.isdigit() and len(header) <= 15  # int() refuses 4,301
    if not readable or int(header) > len(raw):
        raise _bad(
            f"Inference-Header-Content-Length: expected the byte length of the JSON part "
            f"(0 to {len(raw):,}), got {header[:40]!r}"
        )
    size = int(header)
    return _object(json_value(raw[:size])), raw[size:]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad('expected a JSON object such as {"inputs": [...]} as the inference request')
    if not isinstance(body.get("parameters", {}), dict):
        raise _bad("parameters: expected an object")
    return body


def _request_id(body: dict[str, Any], request_id: str) -> str:
    """Return the client's ``id`` (a string, echoed), else the server's request id."""
    sent = body.get("id", request_id)
    if not isinstance(sent, str):
        raise _bad(f"id: expected a string, got {type(sent).__name__}; send the id as a string")
    return sent


def _flat(data: list[Any]) -> list[Any]:
    """Flatten row-major nesting (``[[1], [2]]`` for shape ``[2, 1]``) into one list.

    One level, and only when every element is a list: a list among values is a bad value, for
    the input contract to name by row (an input is one column: its shape has at most 2 axes).
    """
    if not data or not all(isinstance(v, list) for v in data):
        return data
    return [x for v in data for x in v]


def _describe(value: Any) -> str:
    """Name a JSON value for a message (never its text: it may be huge or deeply nested)."""
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return "null" if value is None else type(value).__name__


def _types(datatype: str) -> set[type]:
    """Return the JSON value types of ``datatype`` (null, a missing value, fits any)."""
    if datatype == "BYTES":
        return {str, type(None)}
    if datatype == "BOOL":
        return {bool, type(None)}
    if datatype in _INTEGERS:
        return {int, type(None)}  # not bool: True's type is bool, not int
    return {int, float, type(None)}


def _json_values(name: str, tensor: dict[str, Any]) -> list[Any]:
    data = tensor.get("data")
    if not isinstance(data, list):
        raise _bad(f"input {name!r}: expected a data list (or parameters.binary_data_size)")
    return _flat(data)


def _bytes_elements(name: str, raw: bytes) -> list[str]:
    """Decode BYTES: each element a 4-byte little-endian length, then that many bytes."""
    values, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise _bad(f"input {name!r}: BYTES data ends inside an element's 4-byte length")
        (length,) = _LENGTH.unpack_from(raw, at)
        end = at + 4 + length
        if end > len(raw):
            raise _bad(f"input {name!r}: a BYTES element of {length:,} bytes runs past its data")
        try:
            values.append(raw[at + 4 : end].decode())
        except UnicodeDecodeError:
            raise _bad(f"input {name!r}: BYTES element {len(values)} is not UTF-8 text") from None
        at = end
    return values


def _binary_values(name: str, datatype: str | None, raw: bytes) -> list[Any]:
    if datatype == "BYTES":
        return _bytes_elements(name, raw)
    if datatype not in NUMPY_TYPES:
        raise _bad(f"input {name!r}: binary data needs a datatype of {', '.join(NUMPY_TYPES)}")
    width = np.dtype(NUMPY_TYPES[datatype]).itemsize
    if len(raw) % width:
        raise _bad(f"input {name!r}: {len(raw):,} bytes is not a whole number of {datatype}s")
    values: list[Any] = np.frombuffer(raw, dtype=NUMPY_TYPES[datatype]).tolist()
    return values


def _binary_size(name: str, tensor: dict[str, Any]) -> int | None:
    parameters = tensor.get("parameters", {})
    if not isinstance(parameters, dict):
        raise _bad(f"input {name!r}: parameters: expected an object")
    size = parameters.get("binary_data_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise _bad(f"input {name!r}: parameters.binary_data_size: expected a byte count")
    return size


def _check_shape(name: str, tensor: dict[str, Any], count: int) -> None:
    """Check that the shape, when sent, holds ``count`` values, one per row.

    That is ``[rows]`` or ``[rows, 1]``.
    """
    shape = tensor.get("shape")
    if shape is None:
        return
    dims = isinstance(shape, list) and all(type(d) is int for d in shape)  # not bool
    if (
        not dims
        or len(shape) not in (1, 2)
        or (len(shape) == 2 and shape[1] != 1)
        or math.prod(shape) != count
    ):
        shown = repr(shape[:4]) if dims and len(shape) <= 4 else _describe(shape)
        raise _bad(
            f"input {name!r}: shape {shown} does not fit its {count:,} values; send one value "
            f"per row, shape [{count}]"
        )


def _tensors(body: dict[str, Any], binary: bytes) -> dict[str, tuple[str | None, list[Any]]]:
    """Return each input's declared datatype and values, JSON or binary, by name."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError(
            [Problem(0, "inputs", "expected a non-empty list of tensors")], "invalid_format"
        )
    tensors: dict[str, tuple[str | None, list[Any]]] = {}
    offset = 0
    for i, tensor in enumerate(inputs):
        name = tensor.get("name") if isinstance(tensor, dict) else None
        if not isinstance(name, str):
            raise _bad(f"inputs[{i}]: each input needs a name (a string), a datatype and data")
        datatype = tensor.get("datatype")
        if datatype is not None and (
            not isinstance(datatype, str) or datatype not in {"BYTES", *NUMPY_TYPES}
        ):
            shown = repr(datatype[:20]) if isinstance(datatype, str) else _describe(datatype)
            raise _bad(f"input {name!r}: unknown or unsupported datatype {shown}")
        if name in tensors:
            raise _bad(f"input {name!r}: sent twice; send each column once")
        size = _binary_size(name, tensor)
        if size is None:
            values = _json_values(name, tensor)
        else:
            if offset + size > len(binary):
                raise _bad(
                    f"input {name!r}: parameters.binary_data_size says {size:,} bytes, but only "
                    f"{len(binary) - offset:,} bytes of binary data are left"
                )
            values = _binary_values(name, datatype, binary[offset : offset + size])
            offset += size
        _check_shape(name, tensor, len(values))
        tensors[name] = (datatype, values)
    if offset != len(binary):
        raise _bad(
            f"the body has {len(binary):,} bytes of binary data after the JSON, but the inputs' "
            f"binary_data_size add up to {offset:,}"
        )
    return tensors


def _check_datatypes(model: LoadedModel, tensors: dict[str, tuple[str | None, list[Any]]]) -> None:
    """Each input's declared datatype must be one its column takes, and its values of that type.

    A model input's values are checked here against the datatype (the input contract then
    checks them against the column); the id column's values are left to the contract, which
    names the row of a malformed id. A tensor sent without a datatype is read by its values.
    """
    kinds = {c.name: c.kind for c in model.schema.features}
    for name, (datatype, values) in tensors.items():
        accepted = _ACCEPTED[kinds[name]] if name in kinds else None
        if name == model.schema.id_column:
            accepted = _ID_TYPES
        if datatype is None or accepted is None:
            continue
        if datatype not in accepted:
            raise _bad(
                f"input {name!r}: datatype {datatype} does not fit this column ("
                f"{kinds.get(name, 'id')}); send it as {' or '.join(accepted[:3])}"
            )
        fits = _types(datatype)
        if name in kinds and not set(map(type, values)) <= fits:  # one pass in C
            wrong = next(i for i, v in enumerate(values) if type(v) not in fits)
            raise _bad(
                f"input {name!r}: declared {datatype}, but element {wrong} is "
                f"{_describe(values[wrong])}; send the values as {datatype} or declare the "
                "datatype they have"
            )


def _rows(tensors: dict[str, tuple[str | None, list[Any]]]) -> list[dict[str, Any]]:
    lengths = {len(values) for _, values in tensors.values()}
    if len(lengths) != 1:
        raise InputError(
            [Problem(0, "inputs", f"inputs have different lengths: {sorted(lengths)}")],
            "invalid_format",
        )
    columns = {name: values for name, (_, values) in tensors.items()}
    return [{k: v[i] for k, v in columns.items()} for i in range(lengths.pop())]


# ----------------------------------------------------------------------------- outputs
def _flag(parameters: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise _bad(f"{where}.{key}: expected true or false, got {type(value).__name__}")
    return value


def _wanted(body: dict[str, Any], names: list[str]) -> dict[str, bool]:
    """Return the outputs to send, each with whether it goes as binary data.

    All of them when the request names none; ``binary_data_output`` (request) is the default
    that ``binary_data`` (output) overrides.
    """
    default = _flag(body.get("parameters", {}), "binary_data_output", "parameters", False)
    requested = body.get("outputs")
    if requested is None:
        return dict.fromkeys(names, default)
    if not isinstance(requested, list):
        raise _bad('outputs: expected a list such as [{"name": "predict"}]')
    wanted: dict[str, bool] = {}
    for i, output in enumerate(requested):
        name = output.get("name") if isinstance(output, dict) else None
        if not isinstance(name, str):
            raise _bad(f"outputs[{i}]: each requested output needs a name (a string)")
        if name not in names:
            raise _bad(
                f"output {name[:100]!r}: no such output; this model's outputs are "
                f"{', '.join(names)}"
            )
        parameters = output.get("parameters", {})
        if not isinstance(parameters, dict):
            raise _bad(f"output {name!r}: parameters: expected an object")
        if "classification" in parameters or "shared_memory_region" in parameters:
            raise _bad(f"output {name!r}: the classification and shared memory extensions are "
                       "not supported; ask for predict_proba instead")  # fmt: skip
        wanted[name] = _flag(parameters, "binary_data", f"output {name!r}: parameters", default)
    return wanted


def _id_tensor(ids: list[Any]) -> tuple[str, list[Any]]:
    """Return the id column's values as sent: INT64 when all are integers, else strings."""
    if all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return "INT64", ids
    return "BYTES", ["" if i is None else str(i) for i in ids]


def _output_data(
    model: LoadedModel, labels: np.ndarray, proba: np.ndarray | None, ids: list[Any] | None
) -> dict[str, tuple[str, list[int], list[Any]]]:
    """Every output as (datatype, shape, flat values), each value of its declared datatype."""
    datatype = label_type(model)
    cast = {"FP64": float, "INT64": int, "BOOL": bool, "BYTES": str}[datatype]
    outputs = {"predict": (datatype, [len(labels)], [cast(v) for v in labels.tolist()])}
    if proba is not None:
        outputs["predict_proba"] = ("FP64", list(proba.shape), proba.ravel().tolist())
    if ids is not None:  # the id column's input, echoed (never a model input)
        kind, values = _id_tensor(ids)
        outputs["id"] = (kind, [len(ids)], values)
    return outputs


def encode(datatype: str, values: list[Any]) -> bytes:
    """Return ``values`` as the binary tensor data extension sends ``datatype``."""
    if datatype == "BYTES":
        texts = [str(v).encode() for v in values]
        return b"".join(_LENGTH.pack(len(t)) + t for t in texts)
    return np.asarray(values, dtype=NUMPY_TYPES[datatype]).tobytes()


def _response(header: dict[str, Any], blobs: list[bytes]) -> Response:
    """JSON alone, or the JSON header then the binary outputs (binary tensor data extension)."""
    if not blobs:
        return FastJSONResponse(header)
    head = orjson.dumps(header)
    return Response(
        head + b"".join(blobs),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )


# ----------------------------------------------------------------------------- inference
async def _infer(request: Request, state: State, model: LoadedModel, request_id: str) -> Response:
    body, binary = await _request(request, state.settings.max_body_bytes)
    answer_id = _request_id(body, request_id)
    tensors = _tensors(body, binary)
    _check_datatypes(model, tensors)
    names = _output_names(model)
    if model.schema.id_column in tensors:
        names.append("id")
    wanted = _wanted(body, names)
    # binary tensors have no null: a NaN is a missing value, as in the MLflow protocol
    batch = state.check(_rows(tensors), model, nan_missing=True)
    labels, proba = await state.predict(request_id, model, batch)
    state.metrics.count_predictions(labels, model.classes)
    outputs, blobs = [], []
    for name, (datatype, shape, values) in _output_data(model, labels, proba, batch.ids).items():
        if name not in wanted:
            continue
        tensor: dict[str, Any] = {"name": name, "shape": shape, "datatype": datatype}
        if wanted[name]:
            blobs.append(encode(datatype, values))
            tensor["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            tensor["data"] = values
        outputs.append(tensor)
    header = {
        "model_name": served_name(state, model),
        "model_version": served_version(model),
        "id": answer_id,
        "outputs": outputs,
    }
    return _response(header, blobs)


_INFER = """Inference with one input tensor per column (JSON, or binary tensor data).

Outputs: `predict` (a classifier's labels at the model version's decision threshold, the
same as every other route; INT64, BOOL or BYTES as the classes are, FP64 for a regressor),
`predict_proba` (FP64, rows x classes, in the order of `GET /model`'s classes) for a
classifier, and `id` echoing the id column's input tensor when the request sends one (never
a model input). `outputs` selects among them; each may be asked for as binary data.
"""


@router.post("/v2/models/{name}/infer", description=_INFER)
async def infer(
    name: str, request: Request, state: State, model: Model, request_id: RequestId
) -> Response:
    """Inference with one input tensor per column (JSON, or binary tensor data)."""
    _check(state, model, name, None)
    return await _infer(request, state, model, request_id)


@router.post("/v2/models/{name}/versions/{version}/infer", description=_INFER)
async def version_infer(
    name: str, version: str, request: Request, state: State, model: Model, request_id: RequestId
) -> Response:
    """Inference on one version (404 for a version this server does not serve)."""
    _check(state, model, name, version)
    return await _infer(request, state, model, request_id)
