"""The newest annotated frame of a camera, paced for one live viewer (WebRTC track or MJPEG stream).

A viewer never queues frames: each call waits for a frame newer than the last one it got (at most `fps`
a second) and returns the newest, so a slow viewer skips frames instead of falling behind. While at least
one viewer is open the hub knows the camera is watched, so the worker keeps rendering its overlay.
"""

from __future__ import annotations

import asyncio
import time

import cv2
import numpy as np

from stream.hub import CameraState, Hub

POLL_S = 0.01  # how often a waiting viewer looks for a new frame
KEEPALIVE_S = 1.0  # repeat the last frame after this long so a stalled camera's stream stays open


class CameraGone(Exception):
    """The camera was removed from the hub or stopped while a viewer waited for its frames."""


def fit_for_view(image: np.ndarray, max_width: int) -> np.ndarray:
    """Scale a BGR frame down to `max_width` and crop to even sides (what 4:2:0 video encoders need)."""
    height, width = image.shape[:2]
    if width > max_width:
        height, width = max(2, round(height * max_width / width)), max_width
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image[: height - height % 2, : width - width % 2])


class NewestFrame:
    """One viewer's cursor on one camera's annotated frames; `open`/`close` count it as a watcher.
    `taken` is the monotonic time the last frame was picked: its timestamp, whatever rendering costs."""

    def __init__(self, hub: Hub, camera: CameraState, fps: float, max_width: int) -> None:
        self.hub, self.camera, self.max_width = hub, camera, max_width
        self.interval = 1.0 / fps
        self._seq = -1
        self.taken = 0.0
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

    def _due(self) -> bool:
        if self.camera.frame is None:
            return False
        return self.camera.frame_seq != self._seq or time.monotonic() - self.taken >= KEEPALIVE_S

    async def next(self) -> np.ndarray:
        """Wait for a frame this viewer has not had yet, then return it annotated and fitted."""
        self.open()
        await asyncio.sleep(max(0.0, self.taken + self.interval - time.monotonic()))
        while not self._due():
            if self._gone():
                raise CameraGone(self.camera.id)
            await asyncio.sleep(POLL_S)
        self._seq = self.camera.frame_seq
        self.taken = time.monotonic()
        return await asyncio.to_thread(self._render)

    def _render(self) -> np.ndarray:
        return fit_for_view(self.camera.annotated_frame(), self.max_width)
