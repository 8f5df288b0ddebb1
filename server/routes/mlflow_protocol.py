"""The MLflow scoring protocol: POST /invocations, answered as `mlflow models serve` does."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Request

from lib.core.errors import ParamsError
from lib.serving.batch import InputError, Problem
from server.bodies import FastJSONResponse, json_value, media_type
from server.deps import Model, RequestId, State, require_api_key

router = APIRouter(tags=["mlflow"], dependencies=[Depends(require_api_key)])
_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _records(body: Any) -> list[Any]:
    """Rows from any of MLflow's four JSON input formats."""
    if not isinstance(body, dict) or len([k for k in _FORMATS if k in body]) != 1:
        raise InputError(
            [Problem(0, "", f"expected exactly one of {', '.join(_FORMATS)} at the top level")],
            "invalid_format",
        )
    key = next(k for k in _FORMATS if k in body)
    value = body[key]
    if key == "dataframe_split":
        return _split(value)
    if isinstance(value, dict):  # columnar: {"col": [values]}
        columns = {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        n = max((len(v) for v in columns.values()), default=0)
        return [{k: v[i] for k, v in columns.items() if i < len(v)} for i in range(n)]
    if isinstance(value, list):
        return value
    raise InputError(
        [Problem(0, key, "expected a list of rows or an object of columns")], "invalid_format"
    )


def _unreadable(row: int, field: str, reason: str) -> InputError:
    """Return the error for a body that is not rows (400 ``BAD_REQUEST``, as MLflow answers)."""
    return InputError([Problem(row, field, reason)], "invalid_format")


def _json_type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _split(value: Any) -> list[dict[str, Any]]:
    """Rows of pandas' ``split`` orient, read as ``mlflow models serve`` reads them.

    ``columns`` a list of distinct names; ``data`` a list of rows (lists), the longest with one
    value per column: pandas fills a shorter row's last values with missing values, and refuses
    a row longer than ``columns`` or rows all shorter. ``index``, when sent, has one label per
    row (labels are not used: answers follow row order). Without ``columns`` MLflow builds a
    frame of numbered columns that the model's schema then refuses (``INVALID_PARAMETER_VALUE``);
    so does Quire.
    """
    if not isinstance(value, dict) or "data" not in value:
        raise _unreadable(0, "dataframe_split", 'expected {"columns": [...], "data": [[...]]}')
    columns, data = value.get("columns"), value["data"]
    if columns is None:
        raise InputError(
            [Problem(0, "dataframe_split.columns", "missing; send the column names")],
            "missing_columns",
        )
    _check_columns(columns)
    width = _check_data(data, len(columns))
    index = value.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != len(data)):
        raise _unreadable(0, "dataframe_split.index", f"expected a list of {len(data)} labels")
    padding = [None] * width
    return [dict(zip(columns, [*row, *padding[len(row) :]], strict=True)) for row in data]


def _check_columns(columns: Any) -> None:
    """``columns`` must be a list of distinct names (a list or an object is no name)."""
    if not isinstance(columns, list):
        raise _unreadable(0, "dataframe_split.columns", "expected a list of column names")
    for i, name in enumerate(columns):
        if isinstance(name, list | dict):
            kind = type(name).__name__
            raise _unreadable(0, f"dataframe_split.columns[{i}]", f"expected a name, got {kind}")
    names = list(map(str, columns))
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise _unreadable(0, "dataframe_split.columns", f"names sent twice: {twice[:5]}")


def _check_data(data: Any, width: int) -> int:
    """Check that ``data`` is rows (lists), none longer than ``width``, the longest that long."""
    if not isinstance(data, list):
        raise _unreadable(0, "dataframe_split.data", "expected a list of rows (lists of values)")
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) > width:
            got = f"{len(row)} values" if isinstance(row, list) else _json_type(row)
            raise _unreadable(
                i, "dataframe_split.data", f"expected {width} values (one per column), got {got}"
            )
    longest = max(map(len, data), default=width)
    if longest < width:
        raise _unreadable(
            0, "dataframe_split.data", f"expected {width} values (one per column), got {longest}"
        )
    return width


def _csv_records(raw: bytes) -> list[dict[str, Any]]:
    try:
        frame = pd.read_csv(io.BytesIO(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            [Problem(0, "", f"cannot parse the CSV body: {str(exc).splitlines()[0][:120]}")],
            "invalid_csv",
        ) from None
    records: list[dict[str, Any]] = [
        {str(k): (None if pd.isna(v) else v) for k, v in rec.items()}
        for rec in frame.astype(object).to_dict("records")
    ]
    return records


def _rows(request: Request, raw: bytes) -> tuple[list[Any], dict[str, Any]]:
    """Return the rows and ``params`` of an /invocations body, by its content type."""
    kind = media_type(request)
    if kind == "text/csv":
        return _csv_records(raw), {}
    if kind == "application/json":
        body = json_value(raw)
        return _records(body), _params(body)
    raise HTTPException(
        415, "send application/json or text/csv, as the MLflow scoring protocol expects"
    )


def _params(body: Any) -> dict[str, Any]:
    """Return the body's ``params`` (MLflow's inference parameters).

    As ``mlflow models serve`` for a model whose signature declares no parameters, unknown
    ones are ignored, and so is a ``params`` that is not an object; ``probabilities`` is
    Quire's own, and must be true or false.
    """
    params = body.get("params") if isinstance(body, dict) else None
    if not isinstance(params, dict):
        return {}
    wanted = params.get("probabilities", False)
    if not isinstance(wanted, bool):
        raise ParamsError(
            f"params.probabilities: expected true or false, got {type(wanted).__name__}",
            key="params.probabilities",
        )
    return params


_DESCRIPTION = """Score rows sent in any MLflow format (JSON or text/csv).

Answers `{"predictions": [...]}` as `mlflow models serve` does, with the model version's
decision threshold applied (the same labels as /predict and V2; MLflow's own server, which does
not read the version's tags, answers the pipeline's `predict`). Two additions, both beside
`"predictions"`, which MLflow's own client keeps: `"ids"`, each row's id column value when the
rows carry it; and `"probabilities"` (a `{class: probability}` object per row) when the JSON body
asks for them with `"params": {"probabilities": true}`.
"""


@router.post("/invocations", description=_DESCRIPTION)
async def invocations(
    request: Request, state: State, model: Model, request_id: RequestId
) -> FastJSONResponse:
    """Score rows sent in any MLflow format (JSON or text/csv)."""
    rows, params = _rows(request, await request.body())
    if params.get("probabilities") and model.classes is None:
        raise ParamsError(
            "params.probabilities: a regression model has no class probabilities; leave it out",
            key="params.probabilities",
        )
    batch = state.check(rows, model, extra="ignore", nan_missing=True)
    # The version's decision threshold applies here too: one answer per row on every route.
    labels, proba = await state.predict(request_id, model, batch)
    state.metrics.count_predictions(labels, model.classes)
    answer: dict[str, Any] = {"predictions": labels.tolist()}
    if batch.ids is not None:  # beside "predictions": MLflow's client keeps the extra key
        answer["ids"] = batch.ids
    if params.get("probabilities") and proba is not None and model.classes is not None:
        names = [str(c) for c in model.classes]
        answer["probabilities"] = [dict(zip(names, p, strict=True)) for p in proba.tolist()]
    return FastJSONResponse(answer)
