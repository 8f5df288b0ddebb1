r"""Reading request bodies: content type (415), size (413, in the middleware), JSON (400).

What a JSON body may hold, on every route (anything else is a 400 naming the JSON path, e.g.
``$.labels[0].row``, so that nothing malformed reaches a route):

- nesting at most :data:`MAX_DEPTH` levels (orjson's own limit);
- no lone UTF-16 surrogate (``"\\ud800"``) in a key or a string: it is no text at all;
- integers a float can hold: one beyond 64 bits is read as a float (as orjson reads it), one of
  about 309 digits or more is refused (send long ids as strings);
- ``NaN`` and ``Infinity`` are read, so that each route can say what it makes of them (the MLflow
  protocol reads NaN as a missing value; Quire's routes refuse it naming the row and field).

orjson reads the common case and already refuses the first three; the standard library's reader
(which also reads NaN) is the fallback, and only its value is walked for them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import orjson
from fastapi import HTTPException, Request
from fastapi.responses import Response

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
MAX_DEPTH = 1024  # orjson refuses deeper documents; the fallback refuses them too
_INT64_DIGITS = 18  # any integer of at most 18 digits fits 64 bits: int() without a range check
_INT_RANGE = (-(2**63), 2**64 - 1)  # as orjson: integers beyond 64 bits are read as floats


class _TooLong:
    """An integer literal no float can hold; the walk refuses it, naming its path."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def media_type(request: Request) -> str:
    """Return the request's media type without parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def json_body(request: Request) -> Any:
    """Return the parsed JSON body (415: another content type, 400: JSON that does not parse)."""
    if media_type(request) != "application/json":
        raise HTTPException(415, "send the body as application/json")
    return json_value(await request.body())


def json_value(raw: bytes) -> Any:
    """Return the value of a JSON document (400 when it does not parse or breaks a limit above).

    Raises
    ------
    HTTPException
        400 with a message naming the byte where parsing failed, or the JSON path of the value
        that breaks a limit.
    """
    try:
        return orjson.loads(raw)  # about twice as fast as the standard library
    except orjson.JSONDecodeError:
        pass
    value, too_long = _fallback(raw)
    # a lone surrogate can only come from a \ud800-\udfff escape: walk only when one may be there
    if too_long or _SURROGATE_ESCAPE.search(raw):
        _check(value)
    return value


def _fallback(raw: bytes) -> tuple[Any, bool]:
    """Parse with the standard library (reads NaN and Infinity); 400 when it cannot.

    Returns the value, and whether it holds an integer too long for a float.
    """
    too_long: list[_TooLong] = []

    def integer(text: str) -> int | float | _TooLong:
        number = _integer(text)
        if isinstance(number, _TooLong):
            too_long.append(number)
        return number

    try:
        return json.loads(raw, parse_int=integer), bool(too_long)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = getattr(exc, "pos", getattr(exc, "start", 0))
        raise HTTPException(400, f"the body is not valid JSON (error at byte {where})") from None
    except RecursionError:  # the reader recurses once per level: refuse before the stack ends
        raise HTTPException(
            400, f"the body nests deeper than {MAX_DEPTH} levels; send rows as flat objects"
        ) from None


def _integer(text: str) -> int | float | _TooLong:
    """Read an integer literal as orjson does: beyond 64 bits as a float, too long: refused."""
    if len(text.lstrip("-")) <= _INT64_DIGITS:
        return int(text)
    number = float(text)  # never raises: a literal too long becomes infinity
    if math.isinf(number):
        return _TooLong(len(text.lstrip("-")))
    low, high = _INT_RANGE
    exact = int(text) if len(text) <= 21 else None  # at most 20 digits: maybe still 64 bits
    return exact if exact is not None and low <= exact <= high else number


def _check(value: Any) -> None:
    """Refuse lone surrogates, integers too long and nesting too deep, naming the JSON path."""
    for path, depth, item in _walk(value):
        if depth > MAX_DEPTH:
            raise HTTPException(
                400, f"{path}: nested deeper than {MAX_DEPTH} levels; send rows as flat objects"
            )
        if isinstance(item, _TooLong):
            raise HTTPException(
                400,
                f"{path}: an integer of {item.digits:,} digits is too large for a number; "
                "send long ids as strings",
            )
        if isinstance(item, str) and not _is_text(item):
            raise HTTPException(400, f"{path}: {_SURROGATE}")


_SURROGATE = "holds a lone UTF-16 surrogate (such as \\ud800), which is not text; fix the encoding"


def _walk(value: Any) -> Iterator[tuple[str, int, Any]]:
    """Yield (JSON path, depth, item) for every key and value, without recursion.

    A key is yielded as a string under its object's path, so that a bad key is named too.
    """
    stack: list[tuple[str, int, Any]] = [("$", 0, value)]
    while stack:
        path, depth, item = stack.pop()
        yield path, depth, item
        if isinstance(item, dict):
            for key, child in item.items():
                if not _is_text(key):
                    raise HTTPException(400, f"{path}: a key {_SURROGATE}")
                stack.append((f"{path}.{_name(key)}", depth + 1, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", depth + 1, child) for i, child in enumerate(item))


def _name(key: str) -> str:
    """Return a key as a JSON path step: as is when short and plain, else quoted and cut."""
    if key.isidentifier() and len(key) <= 40:
        return key
    return json.dumps(key[:40] + ("…" if len(key) > 40 else ""))


def _is_text(text: str) -> bool:
    """Whether ``text`` is valid Unicode text (no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class FastJSONResponse(Response):
    """A JSON response rendered by orjson (about nine times faster than the standard library)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise ``content``; NumPy arrays of numbers are written directly."""
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
