"""The counting cycle: the newest frame of every due camera → one batched inference → per-camera
counts, zones, smoothing and densest point → the hub, the publishers and the metrics.

The asyncio loop only schedules: inference and the per-frame arithmetic run in a single worker thread,
so the HTTP API, the live view and the Redis writer stay responsive while the model works. A camera
whose frame was due but waited longer than one period (the model was busy) has the missed frames
counted as dropped; the source itself never queues them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import cv2
import numpy as np

from engines.counting import count_frames
from engines.engine import Engine
from stream.config import CameraConfig
from stream.hub import CameraReading, CameraState, Hub
from stream.metrics import WHOLE_FRAME, StreamMetrics
from stream.overlay import render_overlay
from stream.sources import Frame
from stream.zones import Zone

log = logging.getLogger(__name__)

DENSITY_SCALE = 0.25
"""Density maps are kept at a quarter of the frame size: enough for zones and heatmaps, 16× less work."""

GOLDEN_RATIO = 0.6180339887
"""Cameras' schedules are offset by multiples of this fraction of a period, so with capacity to spare
each cycle carries a few cameras (short batches, young frames) instead of all of them at once."""

MIN_PEOPLE_FOR_DENSEST = 0.5
"""Below this many people a "densest point" is noise, so none is reported."""


class FrameSource(Protocol):
    """What the worker needs of a camera reader (stream.sources): the newest frame and its health."""

    status: str
    reconnects: int
    dropped: int
    fps: float
    last_error: str | None

    def latest(self, after_seq: int = 0) -> Frame | None: ...


class IdleSource:
    """A camera with no reader attached (in cluster mode, one another worker counts): never a frame."""

    status, reconnects, dropped, fps, last_error = "stopped", 0, 0, 0.0, None

    def latest(self, after_seq: int = 0) -> None:
        return None


class Publisher(Protocol):
    def publish(self, reading: CameraReading, extra: Mapping[str, str | int] | None = None) -> None: ...


@dataclasses.dataclass
class CameraTask:
    """The worker's bookkeeping for one camera: schedule, smoothing and what it has already reported."""

    config: CameraConfig
    source: FrameSource
    zones: list[Zone]
    state: CameraState
    phase: float = 0.0  # fraction of a period this camera's schedule is offset by
    last_seq: int = 0
    next_due: float = 0.0
    smoothed: float | None = None
    reported_reconnects: int = 0
    reported_dropped: int = 0
    checked_sizes: set[tuple[int, int]] = dataclasses.field(default_factory=set)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def period(self) -> float:
        return 1.0 / self.config.max_fps if self.config.max_fps else 0.0


@dataclasses.dataclass
class Counted:
    """One camera's result of a cycle, computed in the worker thread."""

    task: CameraTask
    frame: Frame
    density: np.ndarray
    reading: CameraReading


def build_zones(camera: CameraConfig, default_threshold: Callable[..., float | None]) -> list[Zone]:
    """Config zones → Zone objects, filling in the default threshold for zones without their own."""
    return [
        Zone(z.name, np.asarray(z.polygon, dtype=float), z.area_m2, default_threshold(z))
        for z in camera.zones
    ]


def densest_point(density: np.ndarray, frame_size: tuple[int, int]) -> tuple[int, int] | None:
    """The frame pixel (x, y) at the centre of the densest blob, or None when the scene is nearly empty."""
    if float(density.sum()) < MIN_PEOPLE_FOR_DENSEST:
        return None
    row, col = np.unravel_index(int(np.argmax(cv2.GaussianBlur(density, (0, 0), 2.0))), density.shape)
    return (
        int((col + 0.5) * frame_size[0] / density.shape[1]),
        int((row + 0.5) * frame_size[1] / density.shape[0]),
    )


class Worker:
    """Counts every due camera in one batched inference per cycle and hands the readings on."""

    def __init__(
        self,
        engine: Engine,
        hub: Hub,
        metrics: StreamMetrics,
        *,
        publishers: Sequence[Publisher] = (),
        alpha: float = 0.3,
        max_batch: int = 32,
        owns: Callable[[str], bool] | None = None,
        record_extra: Callable[[str], Mapping[str, str | int] | None] | None = None,
    ) -> None:
        self.engine, self.hub, self.metrics = engine, hub, metrics
        self.publishers = list(publishers)
        self.alpha, self.max_batch = alpha, max_batch
        self.owns = owns or (lambda _camera: True)
        self.record_extra = record_extra
        self.tasks: dict[str, CameraTask] = {}
        self.cycles = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    def add_camera(self, camera: CameraConfig, source: FrameSource, zones: list[Zone]) -> CameraTask:
        zone_info = [
            {"name": z.name, "polygon": z.polygon.tolist(), "area_m2": z.area_m2, "threshold": z.threshold}
            for z in zones
        ]
        state = self.hub.cameras.get(camera.id) or CameraState(camera.id, camera.display_name)
        state.zones, state.render = zone_info, functools.partial(render_overlay, zones=zones)
        self.hub.cameras[camera.id] = state
        task = CameraTask(camera, source, zones, state, phase=(len(self.tasks) * GOLDEN_RATIO) % 1.0)
        self.tasks[camera.id] = task
        self._sync_health(task)
        return task

    def replace_source(self, camera_id: str, source: FrameSource) -> None:
        """Point a camera at a new reader (after the service reopened it), keeping its smoothing."""
        task = self.tasks[camera_id]
        task.source, task.last_seq, task.next_due = source, 0, 0.0
        task.reported_reconnects = task.reported_dropped = 0

    async def run(self, stop: asyncio.Event, idle_sleep: float = 0.01) -> None:
        """Cycle until `stop` is set; the current cycle always completes, so its records get published."""
        while not stop.is_set():
            try:
                counted = await self.step()
            except Exception:
                log.exception("counting cycle failed; continuing with the next one")
                counted = 0
            if not counted:
                await asyncio.sleep(idle_sleep)

    async def step(self) -> int:
        """One cycle; returns how many frames were counted (0 when no camera had a new due frame)."""
        for task in self.tasks.values():
            self._sync_health(task)
        due = self._take_due_frames(time.monotonic())
        if not due:
            return 0
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._executor, self._count, due)
        for result in results:
            self._report(result)
        self.cycles += 1
        watched = [r.task.state for r in results if self.hub.watching(r.task.id)]
        if watched:
            await loop.run_in_executor(self._executor, lambda: [state.annotated_frame() for state in watched])
        return len(results)

    def _take_due_frames(self, now: float) -> list[tuple[CameraTask, Frame]]:
        due = []
        for task in self.tasks.values():
            if now < task.next_due or not self.owns(task.id):
                continue
            frame = task.source.latest(task.last_seq)
            if frame is None:
                continue
            self._schedule(task, now, skipped=frame.seq - task.last_seq - 1 if task.last_seq else 0)
            task.last_seq = frame.seq
            due.append((task, frame))
        return due

    def _schedule(self, task: CameraTask, now: float, skipped: int) -> None:
        """Advance the camera's due time on a fixed grid. Whole periods it waited past are dropped frames,
        as far as the camera sent frames meanwhile (`skipped`): a camera that was down lost nothing here."""
        period = task.period
        if not period:
            return
        if task.next_due == 0.0:  # first frame: start the grid at the camera's phase
            task.next_due = now + period * (1.0 + task.phase)
            return
        missed = int((now - task.next_due) // period)
        lost = min(missed, skipped)
        if lost > 0:
            self.metrics.frames_dropped.labels(task.id).inc(lost)
        task.next_due += (missed + 1) * period

    def _count(self, due: list[tuple[CameraTask, Frame]]) -> list[Counted]:
        """Worker thread: batched inference (one call per tile setting) and per-camera arithmetic."""
        groups: dict[str, list[tuple[CameraTask, Frame]]] = {}
        for task, frame in due:
            groups.setdefault(task.config.tiles, []).append((task, frame))
        started = time.perf_counter()
        counted = []
        for tiles, members in groups.items():
            counted += self._infer(tiles, members)
        self.metrics.inference.labels(self.engine.backend).observe(time.perf_counter() - started)
        return [self._read(task, frame, result.density, result.count) for task, frame, result in counted]

    def _infer(
        self, tiles: str, members: list[tuple[CameraTask, Frame]]
    ) -> list[tuple[CameraTask, Frame, object]]:
        """One batch for all members; if it fails, each frame alone, so one bad frame costs only its camera."""
        try:
            results = count_frames(
                self.engine, [f.image for _, f in members], tiles, DENSITY_SCALE, self.max_batch
            )
            return [(task, frame, result) for (task, frame), result in zip(members, results, strict=True)]
        except Exception:
            if len(members) == 1:
                log.exception("frame could not be counted; skipping it", extra={"camera": members[0][0].id})
                return []
        return [item for member in members for item in self._infer(tiles, [member])]

    def _read(self, task: CameraTask, frame: Frame, density: np.ndarray, count: float) -> Counted:
        height, width = frame.image.shape[:2]
        self._check_zones(task, (width, height))
        task.smoothed = (
            count if task.smoothed is None else self.alpha * count + (1 - self.alpha) * task.smoothed
        )
        reading = CameraReading(
            camera=task.id,
            timestamp=frame.timestamp,
            count=count,
            smoothed=task.smoothed,
            zones=tuple(zone.reading(density, (width, height)) for zone in task.zones),
            densest=densest_point(density, (width, height)),
            frame_size=(width, height),
        )
        return Counted(task, frame, density, reading)

    def _check_zones(self, task: CameraTask, frame_size: tuple[int, int]) -> None:
        """Say once per frame size which zones reach outside the frame (they are counted clipped)."""
        if frame_size in task.checked_sizes:
            return
        task.checked_sizes.add(frame_size)
        for zone in task.zones:
            if not zone.fits(*frame_size):
                log.error(
                    "zone reaches outside the frame; counting the part inside",
                    extra={"camera": task.id, "zone": zone.name, "frame": f"{frame_size[0]}x{frame_size[1]}"},
                )

    def _report(self, result: Counted) -> None:
        """Event loop: stamp the frame age, then update the hub, the publishers and the metrics."""
        task, reading = result.task, result.reading
        extra = self.record_extra(task.id) if self.record_extra else {}
        if extra is None:
            return  # vetoed, e.g. the lease ended while this frame was being counted
        reading = dataclasses.replace(reading, frame_age=max(0.0, time.time() - reading.timestamp))
        state = task.state
        state.frame, state.density, state.frame_seq = result.frame.image, result.density, state.frame_seq + 1
        self.hub.publish(reading)
        for publisher in self.publishers:
            publisher.publish(reading, extra)
        self._export(reading)

    def _export(self, reading: CameraReading) -> None:
        m, camera = self.metrics, reading.camera
        m.frames_processed.labels(camera).inc()
        m.frame_age.labels(camera).observe(reading.frame_age)
        m.people.labels(camera, WHOLE_FRAME).set(reading.count)
        for zone in reading.zones:
            m.people.labels(camera, zone.name).set(zone.count)
            if zone.density is not None:
                m.density.labels(camera, zone.name).set(zone.density)

    def _sync_health(self, task: CameraTask) -> None:
        """Mirror the source's status, reconnects and (for cameras without max_fps) drops into hub and metrics."""
        source, state = task.source, task.state
        state.status, state.fps = source.status, source.fps
        if isinstance(source, IdleSource):
            return  # counted by another worker: its health series live there, not here
        self.metrics.stream_up.labels(task.id).set(1 if source.status == "up" else 0)
        if source.reconnects > task.reported_reconnects:
            self.metrics.reconnects.labels(task.id).inc(source.reconnects - task.reported_reconnects)
        task.reported_reconnects = source.reconnects
        if not task.period and source.dropped > task.reported_dropped:
            self.metrics.frames_dropped.labels(task.id).inc(source.dropped - task.reported_dropped)
        task.reported_dropped = source.dropped

    def close(self) -> None:
        self._executor.shutdown(wait=True)
