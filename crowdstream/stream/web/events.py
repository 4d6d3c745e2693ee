"""`/api/events`: count updates as Server-Sent Events, one `reading` event per counted frame and an
`alert` event whenever a zone's alert starts, reaches a new peak or ends.

Each client reads from its own bounded hub queue, which drops the oldest reading when the client is
slow, and a client that reads nothing for `stall_timeout_s` is dropped. A comment line every
`KEEPALIVE_S` keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from crowdstream.stream.hub import Event, Hub
from crowdstream.stream.web.bodies import dumps
from crowdstream.stream.web.config import HttpConfig
from crowdstream.stream.web.errors import json_error
from crowdstream.stream.web.limits import OpenStreams, write_or_drop

KEEPALIVE_S = 15.0
QUEUE_SIZE = 64


def sse_event(item: Event) -> bytes:
    """`event: reading` for a counted frame, `event: alert` for an alert that started, peaked or ended,
    `event: finetune` for a fine-tuning job's progress."""
    return f"event: {item.EVENT}\ndata: {dumps(item.as_dict())}\n\n".encode()


class Events:
    """The SSE handler, limited to `max_event_clients` streams at once."""

    def __init__(self, hub: Hub, http: HttpConfig, streams: OpenStreams) -> None:
        self.hub, self.http, self.streams = hub, http, streams
        self.clients = 0

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Optional `?camera=ID` keeps one camera's readings; the newest known readings come first."""
        wanted = request.query.get("camera")
        if wanted is not None and wanted not in self.hub.cameras:
            raise json_error(web.HTTPNotFound, "no such camera")
        if self.clients >= self.http.max_event_clients:
            raise json_error(
                web.HTTPServiceUnavailable, "too many event streams open", headers={"Retry-After": "10"}
            )
        self.streams.add()
        self.clients += 1
        queue = self.hub.subscribe(QUEUE_SIZE)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            await response.prepare(request)
            for camera in self.hub.cameras.values():
                if camera.reading is not None and wanted in (None, camera.id):
                    await self._write(request, response, sse_event(camera.reading))
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    await self._write(request, response, b": keepalive\n\n")
                    continue
                if wanted in (None, item.camera):
                    await self._write(request, response, sse_event(item))
        except ConnectionError:
            return response
        finally:
            self.hub.unsubscribe(queue)
            self.clients -= 1

    async def _write(self, request: web.Request, response: web.StreamResponse, data: bytes) -> None:
        await write_or_drop(request, response, data, self.http.stall_timeout_s)
