"""The counting cycle, the path of a frame through the service, top to bottom:

1. take the newest frame of every camera that is due (stream.schedule decides, and counts dropped frames);
2. count them all in batched inferences (engines.counting), in the worker thread: one per model and tile
   setting, so cameras that share a model share its batches (each model is loaded once);
3. turn each density map into a reading: zones, smoothing, densest point (stream.readings.frame_reading);
4. publish: the hub (API, live view, events), the publishers (Redis) and the Prometheus metrics.

The asyncio loop only schedules: inference and the per-frame arithmetic run in a single worker thread,
so the HTTP API, the live view and the Redis writer stay responsive while the model works. Cameras'
health (status, reconnects) is mirrored into the hub and the metrics at the start of each cycle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

from crowdstream.engines.counting import DENSITY_SCALE, FrameCount, count_frames
from crowdstream.engines.engine import load_engine
from crowdstream.engines.paint import Unpainted, unpaint
from crowdstream.engines.spec import Engine
from crowdstream.engines.uncertainty import frame_uncertainty
from crowdstream.stream.config import CameraConfig, EngineConfig
from crowdstream.stream.hub import Hub, LiveSource
from crowdstream.stream.metrics import WHOLE_FRAME, StreamMetrics
from crowdstream.stream.readings import CameraReading, frame_reading
from crowdstream.stream.schedule import Schedule, spread_phase
from crowdstream.stream.self_checks import NO_CHECKS, RecentChecks
from crowdstream.stream.sources import Frame, Status
from crowdstream.stream.sources.source import redact
from crowdstream.stream.threads import os_thread_named, set_os_thread_name
from crowdstream.stream.zones import Zone

log = logging.getLogger(__name__)


def load_worker_engine(settings: EngineConfig, model: str | None = None) -> Engine:
    """The configured engine, or `model` with the configured runtime settings (a camera's own model). Its
    threads (ONNX Runtime's intra-op pool) start now and are named "onnxruntime" for the OS, so per-thread
    CPU figures tell them from the worker's thread."""
    with os_thread_named("onnxruntime"):
        return load_engine(model or settings.model, settings.backend, settings.threads, settings.device)


class FrameSource(LiveSource, Protocol):
    """What the worker needs of a camera reader (stream.sources): what the live view needs (the newest
    frame, the new-frame hook) and the camera's health."""

    status: Status
    reconnects: int
    fps: float
    last_error: str | None
    next_retry: float | None


class IdleSource:
    """A camera with no reader attached (in cluster mode, one another worker counts): never a frame."""

    status: Status = "stopped"
    reconnects, fps, last_error, next_retry = 0, 0.0, None, None
    on_frame: Callable[[], None] | None = None

    def latest(self, after_seq: int = 0) -> None:
        return None


class Publisher(Protocol):
    def publish(self, reading: CameraReading, extra: Mapping[str, str | int] | None = None) -> None: ...


@dataclasses.dataclass
class CameraTask:
    """The worker's bookkeeping for one camera: its schedule, smoothing state and reported health."""

    config: CameraConfig
    source: FrameSource
    zones: list[Zone]
    schedule: Schedule
    model: str | None = None  # the camera's own model (None: the worker's default engine)
    previous: CameraReading | None = None  # the last reading: the smoothing state
    inputs: int = 1  # model inputs its last frame cost (what it will take of a cycle's batch)
    reported_reconnects: int = 0
    checked_sizes: set[tuple[int, int]] = dataclasses.field(default_factory=set)
    self_checks: RecentChecks = NO_CHECKS  # its count's recent self-checks
    checked_at: float = float("-inf")  # monotonic time of that self-check
    paint: Unpainted | None = None  # its last frame's paint (engines.paint.unpaint reuses it for the next)

    @property
    def id(self) -> str:
        return self.config.id


@dataclasses.dataclass(frozen=True)
class CycleResult:
    """One camera's result of a cycle, computed in the worker thread."""

    task: CameraTask
    frame: Frame
    density: np.ndarray
    reading: CameraReading


class Worker:
    """Counts every due camera in batched inferences (one per model and tile setting) per cycle and
    hands the readings on."""

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
        model_name: str = "default",
        self_check_every: float = 0.0,
    ) -> None:
        self.engine, self.hub, self.metrics = engine, hub, metrics
        self.model_name = model_name  # what the default engine is called (engine.model)
        self.engines: dict[str, Engine] = {}  # the cameras' own models, by name
        self.publishers = list(publishers)
        self.alpha, self.max_batch = alpha, max_batch
        self.self_check_every = self_check_every  # seconds between a camera's self-checks; 0: never
        self.owns = owns or (lambda _camera: True)
        self.record_extra = record_extra
        self.tasks: dict[str, CameraTask] = {}
        self.cycles = 0
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="inference",
            initializer=set_os_thread_name,
            initargs=("inference",),
        )

    def add_camera(self, camera: CameraConfig, source: FrameSource, zones: list[Zone]) -> CameraTask:
        schedule = Schedule.at_most(camera.max_fps, spread_phase(len(self.tasks)))
        task = CameraTask(camera, source, zones, schedule)
        # first self-checks spread over one period (the first camera at once), not all in the first cycles
        task.checked_at = time.monotonic() - self.self_check_every * (1 - spread_phase(len(self.tasks)))
        self.tasks[camera.id] = task
        self.hub.add_camera(camera.id, camera.display_name, zones, source, redact(camera.url))
        self.set_model(camera.id, camera.model if camera.model in self.engines else None)
        self._sync_health(task)
        return task

    def add_engine(self, model: str, engine: Engine) -> None:
        """Make a loaded model available to cameras (`set_model`, or `model:` in their config)."""
        self.engines[model] = engine

    def set_model(self, camera_id: str, model: str | None) -> None:
        """Count a camera with `model` (added before; None: the default engine) from its next cycle on. A new
        model starts without self-checks: the old model's would judge the new one (a camera just taught would
        stay "uncertain" for minutes)."""
        if model is not None and model not in self.engines:
            raise KeyError(f"model {model!r} is not loaded")
        task = self.tasks[camera_id]
        if model != task.model:
            task.self_checks = NO_CHECKS
            self.metrics.forget_self_checks(camera_id)
        task.model = model
        self.hub.cameras[camera_id].model = model or self.model_name

    def drop_unused_engines(self) -> None:
        """Forget the models no camera counts with any more (after a switch), freeing their memory."""
        used = {task.model for task in self.tasks.values()}
        self.engines = {name: engine for name, engine in self.engines.items() if name in used}

    def replace_source(self, camera_id: str, source: FrameSource) -> None:
        """Point a camera at a new reader (after the service reopened it), keeping its smoothing."""
        task = self.tasks[camera_id]
        task.source, task.reported_reconnects = source, 0
        task.schedule.restart()
        self.hub.cameras[camera_id].source = source

    def set_zones(self, camera_id: str, zones: list[Zone]) -> None:
        """Count a camera's frames with new zones from its next cycle on (an edit in the page)."""
        task = self.tasks[camera_id]
        task.zones = list(zones)
        task.checked_sizes.clear()
        self.hub.cameras[camera_id].set_zones(zones)
        self.metrics.retain_zones(camera_id, [zone.name for zone in zones])  # a deleted zone's series go

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
        results = await asyncio.get_running_loop().run_in_executor(self._executor, self._count, due)
        for result in results:
            self._publish(result)
        self.cycles += 1
        return len(results)

    # 1. what is due

    def _take_due_frames(self, now: float) -> list[tuple[CameraTask, Frame, Engine]]:
        """The newest frame of the most overdue cameras, as many as fill one engine call (`max_batch`
        inputs, at least one camera). A frame's age counts from its capture to the end of its cycle, so a
        short cycle keeps ages low; a camera left for the next cycle gives a newer frame then, and its
        grid of due times does not move (stream.schedule), so its rate is kept."""
        due, inputs = [], 0
        waiting = (t for t in self.tasks.values() if t.schedule.due(now) and self.owns(t.id))
        for task in sorted(waiting, key=lambda t: t.schedule.next_due):
            if due and inputs + task.inputs > self.max_batch:
                break
            frame = task.source.latest(task.schedule.last_seq)
            if frame is None:
                continue
            dropped = task.schedule.count(frame.seq, now)
            if dropped:
                self.metrics.frames_dropped.labels(task.id).inc(dropped)
            due.append((task, frame, self.engines.get(task.model, self.engine)))
            inputs += task.inputs
        return due

    # 2. and 3. in the worker thread: one inference per model and tile setting, then each camera's reading

    def _count(self, due: list[tuple[CameraTask, Frame, Engine]]) -> list[CycleResult]:
        groups: dict[tuple[int, str], tuple[Engine, list[tuple[CameraTask, Frame]]]] = {}
        for task, frame, engine in due:
            groups.setdefault((id(engine), task.config.tiles), (engine, []))[1].append((task, frame))
        started = time.perf_counter()
        counted = [
            (item, engine)
            for (_, tiles), (engine, members) in groups.items()
            for item in self._infer(engine, tiles, members)
        ]
        self.metrics.inference.labels(self.engine.backend).observe(time.perf_counter() - started)
        self._self_check(counted)
        return [self._read(task, frame, result) for (task, frame, result), _ in counted]

    def _self_check(self, counted: list[tuple[tuple[CameraTask, Frame, FrameCount], Engine]]) -> None:
        """Count one frame of this cycle again with finer tiles (engines.uncertainty): the camera whose
        last self-check is oldest, once it is `self_check_every` seconds old. One extra frame per cycle at
        most; a 720p check costs 15 inputs (a counted frame 6-9), so 16 cameras checked every 30 s add about
        8 inputs/s (every 10 s cost a saturated 2-core worker a quarter of its counted frames)."""
        if not self.self_check_every or not counted:
            return
        now = time.monotonic()
        (task, frame, result), engine = min(counted, key=lambda item: item[0][0].checked_at)
        if now - task.checked_at < self.self_check_every:
            return
        task.checked_at = now
        try:
            check = frame_uncertainty(engine, frame.image, result, self.max_batch)
            task.self_checks = task.self_checks.add(check)
        except Exception:
            log.exception("count self-check failed; keeping the previous one", extra={"camera": task.id})

    def _infer(
        self, engine: Engine, tiles: str, members: list[tuple[CameraTask, Frame]]
    ) -> list[tuple[CameraTask, Frame, FrameCount]]:
        """One batch for all members; if it fails, each frame alone, so one bad frame costs only its camera."""
        try:
            views = [unpaint(frame.image, task.paint) for task, frame in members]
            for (task, _), view in zip(members, views, strict=True):
                task.paint = view
            results = count_frames(
                engine, [f.image for _, f in members], tiles, DENSITY_SCALE, self.max_batch, views
            )
            return [(task, frame, result) for (task, frame), result in zip(members, results, strict=True)]
        except Exception:
            if len(members) == 1:
                log.exception("frame could not be counted; skipping it", extra={"camera": members[0][0].id})
                return []
        return [item for member in members for item in self._infer(engine, tiles, [member])]

    def _read(self, task: CameraTask, frame: Frame, result: FrameCount) -> CycleResult:
        task.inputs = result.inputs
        height, width = frame.image.shape[:2]
        self._check_zones(task, (width, height))
        reading = frame_reading(
            task.id,
            frame.timestamp,
            (width, height),
            result.count,
            result.density,
            task.zones,
            task.previous,
            self.alpha,
            task.self_checks,
        )
        task.previous = reading
        return CycleResult(task, frame, result.density, reading)

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

    # 4. publish, in the event loop

    def _publish(self, result: CycleResult) -> None:
        """Stamp the frame age, then update the hub, the publishers and the metrics."""
        camera = result.task.id
        extra = self.record_extra(camera) if self.record_extra else {}
        if extra is None:
            return  # vetoed, e.g. the lease ended while this frame was being counted
        reading = dataclasses.replace(
            result.reading, frame_age=max(0.0, time.time() - result.frame.timestamp)
        )
        self.hub.publish(camera, result.frame, result.density, reading)
        for publisher in self.publishers:
            publisher.publish(reading, extra)
        self._export(reading)

    def _export(self, reading: CameraReading) -> None:
        m, camera = self.metrics, reading.camera
        m.frames_processed.labels(camera).inc()
        m.frame_age.labels(camera).observe(reading.frame_age)
        m.people.labels(camera, WHOLE_FRAME).set(reading.count)
        if (latest := reading.self_checks.latest) is not None:
            m.count_uncertainty.labels(camera).set(latest.spread)
            m.count_uncertain.labels(camera).set(1 if reading.self_checks.uncertain else 0)
        current = {zone.name for zone in self.tasks[camera].zones}
        for zone in reading.zones:
            if zone.name not in current:
                continue  # counted just before an edit removed the zone: its series stay removed
            m.people.labels(camera, zone.name).set(zone.count)
            if zone.density is not None:
                m.density.labels(camera, zone.name).set(zone.density)

    def _sync_health(self, task: CameraTask) -> None:
        """Mirror the source's health into the hub and the metrics."""
        source, feed = task.source, self.hub.cameras[task.id]
        feed.update_health(source.status, source.last_error, source.reconnects, source.next_retry)
        feed.fps = source.fps
        if isinstance(source, IdleSource):
            return  # counted by another worker: its health series live there, not here
        self.metrics.stream_up.labels(task.id).set(1 if source.status == "up" else 0)
        if source.reconnects > task.reported_reconnects:
            self.metrics.reconnects.labels(task.id).inc(source.reconnects - task.reported_reconnects)
        task.reported_reconnects = source.reconnects

    def close(self) -> None:
        self._executor.shutdown(wait=True)
