"""Reading request bodies: content type (415), size (413, in the middleware), JSON (400)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import HTTPException, Request
from fastapi.responses import Response


def media_type(request: Request) -> str:
    """Return the request's media type without parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def json_body(request: Request) -> Any:
    """Return the parsed JSON body (415: another content type, 400: JSON that does not parse)."""
    if media_type(request) != "application/json":
        raise HTTPException(415, "send the body as application/json")
    return json_value(await request.body())


def json_value(raw: bytes) -> Any:
    """Return the value of a JSON document (400 when it does not parse)."""
    try:
        return orjson.loads(raw)  # about twice as fast as the standard library
    except orjson.JSONDecodeError:
        pass
    try:  # also reads NaN and Infinity, so that the input check can name their row and field
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = getattr(exc, "pos", 0)
        raise HTTPException(400, f"the body is not valid JSON (error at byte {where})") from None
    except ValueError:  # an integer of more than 4,300 digits: Python refuses to convert it
        raise HTTPException(
            400, "the body holds a number too long to read; send long ids as strings"
        ) from None


class FastJSONResponse(Response):
    """A JSON response rendered by orjson (about nine times faster than the standard library)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise ``content``; NumPy arrays of numbers are written directly."""
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
