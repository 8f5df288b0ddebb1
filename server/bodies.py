"""Reading request bodies: content type (415), size (413, in the middleware), JSON (400)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request


def media_type(request: Request) -> str:
    """Return the request's media type without parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def json_body(request: Request) -> Any:
    """Return the parsed JSON body (415: another content type, 400: JSON that does not parse)."""
    if media_type(request) != "application/json":
        raise HTTPException(415, "send the body as application/json")
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = getattr(exc, "pos", 0)
        raise HTTPException(400, f"the body is not valid JSON (error at byte {where})") from None
