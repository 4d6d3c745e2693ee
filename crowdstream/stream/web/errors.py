"""Every failure leaves the server as a small JSON object (`{"error": ..., "status": ...}`), never as a
traceback or an HTML page: clients parse one shape, and nothing about the server's internals leaks."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(
    kind: type[web.HTTPException], message: str, headers: Mapping[str, str] | None = None, **arguments: int
) -> web.HTTPException:
    """An aiohttp HTTP exception of class `kind` (with its own required `arguments`) whose body is the
    JSON error object."""
    body = json.dumps({"error": message, "status": kind.status_code})
    return kind(text=body, content_type="application/json", headers=headers, **arguments)


def _as_json(exc: web.HTTPException) -> web.Response:
    body = json.dumps({"error": exc.reason, "status": exc.status})
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
    return web.Response(status=exc.status, text=body, content_type="application/json", headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's own errors (unknown route, wrong method, body too large) and any unexpected
    exception into the JSON error shape; an unexpected one is logged and answered 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return _as_json(exc)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return _as_json(web.HTTPInternalServerError(reason="internal error"))
