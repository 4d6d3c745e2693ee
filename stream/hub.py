"""The shared state between the counting worker and its readers (HTTP API, live view, publishers).

The worker writes each camera's newest frame and reading here; readers never block it. Annotated frames
are rendered lazily, only when somebody watches or asks for a snapshot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Status = Literal["starting", "up", "down", "stopped", "ended"]


@dataclass(frozen=True)
class ZoneReading:
    """People in one zone; `density` is people per m² when the zone has an area, else None."""

    name: str
    count: float
    density: float | None = None
    threshold: float | None = None

    @property
    def over_threshold(self) -> bool:
        value = self.density if self.density is not None else self.count
        return self.threshold is not None and value > self.threshold


@dataclass(frozen=True)
class CameraReading:
    """One counted frame of one camera."""

    camera: str
    timestamp: float  # wall-clock seconds of capture
    count: float
    smoothed: float
    zones: tuple[ZoneReading, ...] = ()
    frame_age: float = 0.0  # seconds from capture to publish
    densest: tuple[int, int] | None = None  # (x, y) in frame pixels
    frame_size: tuple[int, int] = (0, 0)  # (width, height)

    def as_dict(self) -> dict:
        return {
            "camera": self.camera,
            "timestamp": self.timestamp,
            "count": round(self.count, 2),
            "smoothed": round(self.smoothed, 2),
            "frame_age": round(self.frame_age, 4),
            "densest": list(self.densest) if self.densest else None,
            "frame_size": list(self.frame_size),
            "zones": [
                {
                    "name": z.name,
                    "count": round(z.count, 2),
                    "density": None if z.density is None else round(z.density, 4),
                    "threshold": z.threshold,
                    "over_threshold": z.over_threshold,
                }
                for z in self.zones
            ],
        }


@dataclass
class CameraState:
    """What the hub knows of one camera. `render` turns (frame, density, reading) into an annotated frame."""

    id: str
    name: str
    status: Status = "starting"
    fps: float = 0.0
    zones: list[dict] = field(default_factory=list)
    frame: np.ndarray | None = None
    density: np.ndarray | None = None
    reading: CameraReading | None = None
    frame_seq: int = 0
    render: Callable[[np.ndarray, np.ndarray | None, CameraReading | None], np.ndarray] | None = None
    _rendered: tuple[int, np.ndarray] | None = None

    def annotated_frame(self) -> np.ndarray | None:
        """The newest frame with heatmap, zones and counts drawn on it (cached per frame).

        The frame, its map and reading are read once, so a render in a thread that overlaps the worker's
        next frame is cached under the sequence number it actually drew."""
        seq, frame, density, reading = self.frame_seq, self.frame, self.density, self.reading
        if frame is None:
            return None
        cached = self._rendered
        if cached is not None and cached[0] == seq:
            return cached[1]
        image = self.render(frame, density, reading) if self.render else frame
        self._rendered = (seq, image)
        return image


class Hub:
    """Cameras by id, the number of live viewers (so the worker renders only when watched), and a fan-out
    of readings to subscribers through bounded queues that drop the oldest item when a reader is slow."""

    def __init__(self) -> None:
        self.cameras: dict[str, CameraState] = {}
        self.viewers: dict[str, int] = {}
        self._subscribers: set[asyncio.Queue] = set()
        self.started = time.time()
        self.ready = False

    def watching(self, camera_id: str) -> bool:
        return self.viewers.get(camera_id, 0) > 0

    def add_viewer(self, camera_id: str, delta: int = 1) -> None:
        self.viewers[camera_id] = max(0, self.viewers.get(camera_id, 0) + delta)

    def subscribe(self, maxsize: int = 256) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    def publish(self, reading: CameraReading) -> None:
        """Record a reading and hand it to every subscriber without ever blocking."""
        camera = self.cameras.get(reading.camera)
        if camera is not None:
            camera.reading = reading
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(reading)
