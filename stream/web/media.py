"""Video for places where WebRTC is blocked: a JPEG snapshot and a multipart MJPEG stream of the
annotated frames. Both count against the viewer limits like a WebRTC viewer (MJPEG for as long as it
is open), and an MJPEG client that stops reading is dropped after `stall_timeout_s`."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
from aiohttp import web

from stream.hub import Hub
from stream.web.api import find_camera
from stream.web.config import HttpConfig
from stream.web.errors import json_error
from stream.web.frames import CameraGone, NewestFrame
from stream.web.limits import OpenStreams, ViewerSlots, write_or_drop

BOUNDARY = "frame"


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


class Media:
    """Handlers of `/snapshot.jpg` and `/mjpeg`."""

    def __init__(self, hub: Hub, http: HttpConfig, slots: ViewerSlots, streams: OpenStreams) -> None:
        self.hub, self.http, self.slots, self.streams = hub, http, slots, streams

    async def snapshot(self, request: web.Request) -> web.Response:
        """The newest annotated frame at full size."""
        camera = find_camera(self.hub, request)
        if camera.frame is None:
            raise json_error(
                web.HTTPServiceUnavailable, "no frame from this camera yet", headers={"Retry-After": "1"}
            )
        data = await asyncio.to_thread(lambda: encode_jpeg(camera.annotated_frame(), self.http.jpeg_quality))
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def mjpeg(self, request: web.Request) -> web.StreamResponse:
        """Annotated frames as `multipart/x-mixed-replace`, paced like a WebRTC viewer."""
        camera = find_camera(self.hub, request)
        self.slots.acquire(camera.id)
        self.streams.add()
        frames = NewestFrame(self.hub, camera, self.http.live_fps, self.http.live_max_width)
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
        self, request: web.Request, response: web.StreamResponse, frames: NewestFrame
    ) -> None:
        while True:
            try:
                image = await frames.next()
            except CameraGone:
                return
            data = await asyncio.to_thread(encode_jpeg, image, self.http.jpeg_quality)
            part = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            await write_or_drop(request, response, part + data + b"\r\n", self.http.stall_timeout_s)
