"""JSON across the API's boundary: the one reader of every request body, and the writer of answers and
events that never emits what JSON cannot hold.

A body is read only as `application/json` (so a form on another site cannot send one), at most
`MAX_BODY_BYTES`, nested at most `MAX_DEPTH` deep (measured on the text before parsing, so a deeply
nested body is refused in linear time and never reaches the parser's recursion), and with every number
finite and within ±2**53 (`1e400`, `Infinity`, `NaN` and a 400-digit integer are refused here, before
any endpoint converts them). Whatever is wrong is a 4xx JSON error naming it; the endpoint then checks
the shape and ranges it expects.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from aiohttp import web

from crowdstream.stream.web.errors import json_error

MAX_BODY_BYTES = 256 * 1024
"""Largest JSON body: 32 zones of 256 points each fit, as does an SDP offer."""
MAX_DEPTH = 8
"""Deepest nesting of a body: zones need 5 ({"zones": [{"polygon": [[x, y]]}]})."""
MAX_MAGNITUDE = 2**53
"""Largest number a body may hold: every integer up to it is exact as a float (and in JavaScript)."""

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


class BodyError(ValueError):
    """A body the reader refuses; the message says why."""


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON `text` (brackets inside strings do not count)."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    return max(accumulate(1 if bracket in "[{" else -1 for bracket in brackets), default=0)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise BodyError(f"number {text[:24]}{'…' if len(text) > 24 else ''} is out of range (±2**53)")
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > 16 or abs(int(text)) > MAX_MAGNITUDE:
        raise BodyError(f"number {text[:24]}{'…' if len(text) > 24 else ''} is out of range (±2**53)")
    return int(text)


def _constant(name: str) -> Any:
    raise BodyError(f"{name} is not a JSON number: numbers must be finite")


def parse_body(raw: bytes) -> Any:
    """The value of a JSON body, or BodyError saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("the body is not UTF-8 text") from None
    if nesting_depth(text) > MAX_DEPTH:
        raise BodyError(f"the body nests arrays and objects deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_float=_number, parse_int=_integer, parse_constant=_constant)
    except BodyError:
        raise
    except (ValueError, RecursionError):  # RecursionError cannot happen below MAX_DEPTH; kept as a guard
        raise BodyError("the body is not valid JSON") from None


def _too_large(max_bytes: int, size: int) -> web.HTTPException:
    return json_error(
        web.HTTPRequestEntityTooLarge,
        f"the body is larger than {max_bytes} bytes",
        max_size=max_bytes,
        actual_size=size,
    )


async def json_body(request: web.Request, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """A request's JSON body: 413 beyond `max_bytes` (a stated length is refused before reading, a
    chunked body after; the app's client_max_size caps both), 415 unless sent as application/json,
    400 for anything `parse_body` refuses."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes, request.content_length)
    if request.content_type != "application/json":
        raise json_error(web.HTTPUnsupportedMediaType, "send the body as application/json")
    raw = await request.read()
    if len(raw) > max_bytes:
        raise _too_large(max_bytes, len(raw))
    try:
        return parse_body(raw)
    except BodyError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float as None: what a JSON answer or event carries (Python's
    json writes them as bare NaN/Infinity, which no JSON parser reads, and the page then shows nothing)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """Compact JSON of `value`, non-finite numbers as null."""
    return json.dumps(finite(value), separators=(",", ":"), allow_nan=False)
