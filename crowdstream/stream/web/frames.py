"""One live viewer's cursor on a camera (a WebRTC track or an MJPEG stream).

A viewer never queues frames: each call waits until the camera has something it has not shown yet (a
new frame, or a new count for the overlay), at most `fps` times a second, and returns the newest live
picture, shared with every other viewer of the camera. A slow viewer skips pictures instead of falling
behind. Opening the cursor counts it as a watcher, which switches the camera's live frames on.
"""

from __future__ import annotations

import asyncio
import time

from crowdstream.stream.hub import CameraFeed, Hub
from crowdstream.stream.pictures import Picture

KEEPALIVE_S = 1.0  # repeat the last picture after this long so a stalled camera's stream stays open


class CameraGone(Exception):
    """The camera was removed from the hub or stopped while a viewer waited for its frames."""


class LiveCursor:
    """Paces one viewer; `taken` is the monotonic time the last picture was picked (its timestamp,
    whatever rendering costs)."""

    def __init__(self, hub: Hub, camera: CameraFeed, fps: float, max_width: int) -> None:
        self.hub, self.camera, self.max_width = hub, camera, max_width
        self.interval = 1.0 / fps
        self.taken = 0.0
        self._shown: tuple[int, int, int] | None = None
        self._open = False

    def open(self) -> None:
        if not self._open:
            self._open = True
            self.hub.add_viewer(self.camera.id, 1)

    def close(self) -> None:
        if self._open:
            self._open = False
            self.hub.add_viewer(self.camera.id, -1)

    def _gone(self) -> bool:
        return self.camera.status == "stopped" or self.hub.cameras.get(self.camera.id) is not self.camera

    def _news(self) -> bool:
        """Whether there is a picture this viewer has not had (or the keepalive is due)."""
        frame, counted = self.camera.live_frame(), self.camera.counted
        if frame is None:
            return False
        key = (frame.seq, counted.seq if counted else 0, self.max_width)
        return key != self._shown or time.monotonic() - self.taken >= KEEPALIVE_S

    async def next(self) -> Picture:
        """Wait for a picture this viewer has not shown yet and return it."""
        self.open()
        await asyncio.sleep(max(0.0, self.taken + self.interval - time.monotonic()))
        while True:
            if self._gone():
                raise CameraGone(self.camera.id)
            version = self.camera.version
            if self._news():
                picked = time.monotonic()
                picture = await self.camera.live_picture(self.max_width)
                if picture is not None:
                    break
            keepalive = self.taken + KEEPALIVE_S - time.monotonic() if self._shown else KEEPALIVE_S
            await self.camera.changed(version, timeout=max(0.05, keepalive))
        self._shown, self.taken = picture.key, picked
        return picture
