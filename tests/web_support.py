"""Support for the web tests (no tests here): the app served on a free loopback port over the real hub and
the real counting worker, with the shipped model counting frames of the shipped demo clip.

`demo_clip` decodes the clip with OpenCV and counts every frame once on its own (`count_frames`), as an
independent reference. `ClipSource` plays the decoded frames at the clip's pace as a camera reader, so
the worker, the hub, the overlays and the live view are exactly the service's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import cv2
import numpy as np
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from crowdstream.engines.counting import count_frames
from crowdstream.engines.engine import load_engine
from crowdstream.engines.spec import Engine
from crowdstream.stream.alert_store import AlertStore
from crowdstream.stream.alerts import AlertTracker
from crowdstream.stream.camera_models import CameraModels
from crowdstream.stream.camera_settings import CameraSettings
from crowdstream.stream.config import CameraConfig, ServiceConfig, load_config
from crowdstream.stream.finetune_config import FinetuneConfig
from crowdstream.stream.finetune_jobs import FinetuneJobs
from crowdstream.stream.hub import Hub
from crowdstream.stream.metrics import StreamMetrics
from crowdstream.stream.redis_publisher import DEFAULT_PREFIX
from crowdstream.stream.sources import DEMO_CLIP, Frame, Status
from crowdstream.stream.web.app import create_app
from crowdstream.stream.web.config import HttpConfig
from crowdstream.stream.web.teach import Teach
from crowdstream.stream.worker import Worker
from crowdstream.stream.zone_editor import ZoneEditor
from tests.conftest import free_port

CLIP_FRAMES = 12
CLIP_WIDTH = 640
COUNTING_FPS = 4.0
TILES = CameraConfig(id="any", url="demo").tiles  # the cameras' default tiling, for the reference counts too
TOKEN = "test-token-0123456789abcdef"
HALL_URL = "rtsp://admin:s3cret@10.0.0.7:554/stream1"
"""The hall camera's configured URL (it plays the clip like the others): the API must not show its password."""


NO_FINETUNE = (
    sys.executable,
    "-c",
    "import json; print(json.dumps({'event': 'error', 'message': 'no fine-tuning in this test server'}))",
)
"""What the test server runs for a fine-tuning job: a one-line failure, never minutes of training."""


@dataclass(frozen=True)
class Clip:
    """Decoded frames of a real video with their density maps and counts from the real model."""

    frames: list[np.ndarray]
    densities: list[np.ndarray]
    counts: list[float]
    fps: float


@functools.cache
def shipped_engine() -> Engine:
    return load_engine()


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
    results = count_frames(shipped_engine(), decoded, TILES)
    return Clip(decoded, [r.density for r in results], [r.count for r in results], fps)


def left_half(width: int, height: int, threshold: float) -> dict:
    """One zone over the left half of the frame, as a config file gives it."""
    polygon = [[0, 0], [width // 2, 0], [width // 2, height - 1], [0, height - 1]]
    return {"name": "left half", "polygon": polygon, "threshold": threshold}


class ClipSource:
    """A camera reader (the worker's FrameSource) playing a clip in a loop at its own pace; `silent`
    never delivers a frame. `stop()` ends it like a stopped reader."""

    def __init__(self, clip: Clip, silent: bool = False) -> None:
        self.clip, self.silent = clip, silent
        self.status: Status = "starting" if silent else "up"
        self.reconnects, self.fps, self.last_error, self.next_retry = 0, clip.fps, None, None
        self.on_frame: Callable[[], None] | None = None
        self._frame: Frame | None = None

    def latest(self, after_seq: int = 0) -> Frame | None:
        frame = self._frame
        return frame if frame is not None and frame.seq > after_seq else None

    def stop(self) -> None:
        self.status, self.silent = "stopped", True

    async def play(self) -> None:
        seq = 0
        while not self.silent:
            seq += 1
            self._frame = Frame(self.clip.frames[(seq - 1) % len(self.clip.frames)], time.time(), seq)
            if self.on_frame is not None:
                self.on_frame()
            await asyncio.sleep(1 / self.clip.fps)


@dataclass
class Served:
    """A running app over the real worker: its base URL, the app, the hub, the clip and the cameras."""

    url: str
    app: web.Application
    hub: Hub
    clip: Clip
    registry: CollectorRegistry
    worker: Worker
    sources: dict[str, ClipSource]
    alerts: AlertStore
    counting: asyncio.Task
    stop_counting: asyncio.Event = field(default_factory=asyncio.Event)

    async def pause_counting(self) -> None:
        """Stop the worker: counts, readings and overlays stay as they are while the video plays on."""
        self.stop_counting.set()
        await self.counting


async def until_counted(hub: Hub, cameras: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(hub.cameras[c].counted is None for c in cameras):
        if time.monotonic() > deadline:
            pytest.fail(f"the worker counted none of {cameras} within {timeout} s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serve(
    http: HttpConfig | None = None,
    *,
    redis_url: str | None = None,
    thresholds: dict[str, float] | None = None,
    silent: tuple[str, ...] = (),
    self_check_every: float = 0.0,
) -> AsyncIterator[Served]:
    """Serve the app on 127.0.0.1 for cameras playing the demo clip (`silent` ones never deliver a frame),
    counted by the real worker with a zone over the left half of each (editable, not saved: no config
    file), self-checking each camera's count every `self_check_every` seconds (0: never); always shuts
    everything down."""
    http, clip = http or HttpConfig(), demo_clip()
    thresholds = thresholds or {"gate": 1.0, "hall": 10_000.0}
    registry = CollectorRegistry()
    Gauge("crowd_test_gauge", "a metric the test registry holds", registry=registry).set(3)
    hub = Hub()
    alerts = AlertStore(hub, AlertTracker(end_after_s=1.0), redis_url, DEFAULT_PREFIX)
    worker = Worker(
        shipped_engine(),
        hub,
        StreamMetrics(registry),
        alpha=0.5,
        publishers=[alerts],
        self_check_every=self_check_every,
    )
    height, width = clip.frames[0].shape[:2]
    sources = {camera: ClipSource(clip, silent=camera in silent) for camera in thresholds}
    cameras = [
        CameraConfig(
            id=camera,
            name=camera.title(),
            url=HALL_URL if camera == "hall" else "demo",
            max_fps=COUNTING_FPS,
            zones=[left_half(width, height, threshold)],
        )
        for camera, threshold in thresholds.items()
    ]
    data = tempfile.TemporaryDirectory(prefix="crowdstream-data-")
    config = ServiceConfig(cameras=cameras, finetune=FinetuneConfig(data_dir=data.name))
    for camera in config.cameras:
        worker.add_camera(camera, sources[camera.id], config.zones_of(camera))

    def apply_zones(camera: CameraConfig) -> None:  # what the service does with an edit
        worker.set_zones(camera.id, config.zones_of(camera))
        alerts.end_camera(camera.id)

    hub.ready = True
    settings = CameraSettings(config, None, load_config)
    app = create_app(
        hub,
        http,
        registry=registry,
        redis_url=redis_url,
        alerts=alerts,
        zone_editor=ZoneEditor(settings, apply_zones),
        teach=Teach(
            hub,
            config,
            FinetuneJobs(config.finetune, hub.publish_event, program=NO_FINETUNE),
            CameraModels(settings, worker, load_engine),
        ),
    )
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(source.play()) for source in sources.values()]
    tasks.append(asyncio.create_task(alerts.run()))
    counting = asyncio.create_task(worker.run(stop))
    served = Served(
        f"http://127.0.0.1:{port}", app, hub, clip, registry, worker, sources, alerts, counting, stop
    )
    try:
        await until_counted(hub, [c for c in thresholds if c not in silent])
        yield served
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(counting, *tasks, return_exceptions=True)
        await alerts.close(timeout=1)
        await runner.cleanup()
        worker.close()
        data.cleanup()


async def get_json(session: aiohttp.ClientSession, url: str, **kwargs) -> tuple[int, dict]:
    async with session.get(url, **kwargs) as response:
        return response.status, await response.json(content_type=None)
