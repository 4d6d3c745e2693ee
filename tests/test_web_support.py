"""Support for the web tests (no tests here): a real Hub fed like the worker feeds it, and the app
served on a free loopback port.

`demo_clip` decodes the shipped demo clip with OpenCV and counts every frame once with the shipped
model (`count_frames`); `LiveFeed` then plays those frames, density maps and readings into the hub at
the clip's pace, with zones and the real overlay, so the live view shows what the service would show.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from engines.counting import count_frames
from engines.engine import load_engine
from stream.hub import CameraReading, CameraState, Hub
from stream.overlay import render_overlay
from stream.web.app import create_app
from stream.web.config import HttpConfig
from stream.zones import Zone
from tests.conftest import free_port

DEMO_CLIP = Path(__file__).resolve().parent.parent / "stream" / "demo" / "crowd-demo.mp4"
CLIP_FRAMES = 12
CLIP_WIDTH = 640
TOKEN = "test-token-0123456789abcdef"


@dataclass(frozen=True)
class Clip:
    """Decoded frames of a real video with their density maps and counts from the real model."""

    frames: list[np.ndarray]
    densities: list[np.ndarray]
    counts: list[float]
    fps: float


@functools.cache
def demo_clip(frames: int = CLIP_FRAMES, width: int = CLIP_WIDTH) -> Clip:
    capture = cv2.VideoCapture(str(DEMO_CLIP))
    fps = capture.get(cv2.CAP_PROP_FPS) or 12.0
    decoded = []
    while len(decoded) < frames:
        ok, frame = capture.read()
        if not ok:
            break
        height = round(frame.shape[0] * width / frame.shape[1]) // 2 * 2
        decoded.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    capture.release()
    if not decoded:
        pytest.fail(f"could not decode {DEMO_CLIP}")
    results = count_frames(load_engine(), decoded)
    return Clip(decoded, [r.density for r in results], [r.count for r in results], fps)


def camera_zones(width: int, height: int, threshold: float) -> list[Zone]:
    """One zone over the left half of the frame."""
    polygon = np.array([[0, 0], [width // 2, 0], [width // 2, height - 1], [0, height - 1]], dtype=float)
    return [Zone("left half", polygon, threshold=threshold)]


class LiveFeed:
    """Plays a clip into hub cameras the way the worker does: newest frame, density, reading."""

    def __init__(self, hub: Hub, clip: Clip, thresholds: dict[str, float]) -> None:
        self.hub, self.clip = hub, clip
        self.readings = True  # False: frames keep coming but counts stop changing
        height, width = clip.frames[0].shape[:2]
        self.zones = {camera: camera_zones(width, height, t) for camera, t in thresholds.items()}
        for camera, zones in self.zones.items():
            hub.cameras[camera] = CameraState(
                id=camera,
                name=camera.replace("-", " ").title(),
                status="up",
                fps=clip.fps,
                zones=[{"name": z.name, "threshold": z.threshold} for z in zones],
                render=functools.partial(render_overlay, zones=zones),
            )
        hub.ready = True

    def show(self, index: int) -> None:
        """Put frame `index` of the clip (and its reading, unless readings are paused) on every camera."""
        i = index % len(self.clip.frames)
        frame, density = self.clip.frames[i], self.clip.densities[i]
        for camera_id, zones in self.zones.items():
            camera = self.hub.cameras[camera_id]
            camera.frame, camera.density, camera.frame_seq = frame, density, camera.frame_seq + 1
            if self.readings:
                size = (frame.shape[1], frame.shape[0])
                count = self.clip.counts[i]
                zone_readings = tuple(zone.reading(density, size) for zone in zones)
                self.hub.publish(
                    CameraReading(
                        camera_id, time.time(), count, count, zone_readings, frame_age=0.01, frame_size=size
                    )
                )

    async def run(self) -> None:
        index = 0
        while True:
            self.show(index)
            index += 1
            await asyncio.sleep(1 / self.clip.fps)


@dataclass
class Served:
    """A running app: its base URL, the app, the hub and the feed."""

    url: str
    app: web.Application
    hub: Hub
    feed: LiveFeed
    registry: CollectorRegistry


@contextlib.asynccontextmanager
async def serve(
    http: HttpConfig | None = None,
    *,
    redis_url: str | None = None,
    thresholds: dict[str, float] | None = None,
) -> AsyncIterator[Served]:
    """Serve the app for a hub fed with the demo clip on 127.0.0.1; always shuts it down."""
    http = http or HttpConfig()
    hub = Hub()
    feed = LiveFeed(hub, demo_clip(), thresholds or {"gate": 1.0, "hall": 10_000.0})
    feed.show(0)
    registry = CollectorRegistry()
    Gauge("crowd_test_gauge", "a metric the test registry holds", registry=registry).set(3)
    app = create_app(hub, http, registry=registry, redis_url=redis_url)
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    task = asyncio.create_task(feed.run())
    try:
        yield Served(f"http://127.0.0.1:{port}", app, hub, feed, registry)
    finally:
        task.cancel()
        await runner.cleanup()


async def get_json(session: aiohttp.ClientSession, url: str, **kwargs) -> tuple[int, dict]:
    async with session.get(url, **kwargs) as response:
        return response.status, await response.json(content_type=None)
