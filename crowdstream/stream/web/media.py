"""Video for places where WebRTC is blocked: a JPEG snapshot and a multipart MJPEG stream of the
annotated frames. The MJPEG stream counts against the viewer limits like a WebRTC viewer for as long as
it is open, every live picture is JPEG-encoded once for all of its viewers, and a client that stops
reading is dropped after `stall_timeout_s`."""

from __future__ import annotations

import asyncio

from aiohttp import web

from crowdstream.stream.hub import Hub
from crowdstream.stream.pictures import encode_jpeg
from crowdstream.stream.web.api import find_camera
from crowdstream.stream.web.config import HttpConfig
from crowdstream.stream.web.errors import json_error
from crowdstream.stream.web.frames import CameraGone, LiveCursor
from crowdstream.stream.web.limits import OpenStreams, ViewerSlots, write_or_drop

BOUNDARY = "frame"


class Media:
    """Handlers of `/snapshot.jpg` and `/mjpeg`."""

    def __init__(self, hub: Hub, http: HttpConfig, slots: ViewerSlots, streams: OpenStreams) -> None:
        self.hub, self.http, self.slots, self.streams = hub, http, slots, streams

    async def snapshot(self, request: web.Request) -> web.Response:
        """The newest counted frame annotated, at full size; `?overlay=0` the frame as the camera sent
        it (what the zone editor draws on)."""
        camera = find_camera(self.hub, request)
        counted = camera.counted
        if counted is None:
            raise json_error(
                web.HTTPServiceUnavailable, "no frame from this camera yet", headers={"Retry-After": "1"}
            )
        overlay = request.query.get("overlay", "1")
        if overlay not in ("0", "1"):
            raise json_error(web.HTTPBadRequest, "overlay must be 0 or 1")
        image = camera.snapshot if overlay == "1" else lambda: counted.frame.image
        data = await asyncio.to_thread(lambda: encode_jpeg(image(), self.http.jpeg_quality))
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def mjpeg(self, request: web.Request) -> web.StreamResponse:
        """Annotated frames as `multipart/x-mixed-replace`, paced like a WebRTC viewer."""
        camera = find_camera(self.hub, request)
        self.slots.acquire(camera.id)
        self.streams.add()
        frames = LiveCursor(self.hub, camera, self.http.live_fps, self.http.live_max_width)
        response = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                "Cache-Control": "no-store",
            }
        )
        try:
            await response.prepare(request)
            await self._send_frames(request, response, frames)
        except ConnectionError:
            pass  # the viewer left or stopped reading
        finally:
            frames.close()
            self.slots.release(camera.id)
        return response

    async def _send_frames(
        self, request: web.Request, response: web.StreamResponse, frames: LiveCursor
    ) -> None:
        while True:
            try:
                picture = await frames.next()
            except CameraGone:
                return
            data = await asyncio.to_thread(picture.jpeg, self.http.jpeg_quality)
            part = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            await write_or_drop(request, response, part + data + b"\r\n", self.http.stall_timeout_s)
