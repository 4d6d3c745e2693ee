"""Where the counting worker meets its readers (HTTP API, live view, events).

The worker makes one update per counted frame, `Hub.publish(camera, frame, density, reading)`; readers
never block it. Each camera is a `CameraFeed`: its health, zones, newest counted frame and, while
somebody watches, its live frames: the camera's reader then signals every new frame, and viewers await
`changed()` instead of polling. Pictures are rendered once and shared (see stream.pictures). Readings
and alerts fan out to subscribers (the SSE stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np

from crowdstream.stream.alerts import Alert
from crowdstream.stream.pictures import Counted, Picture, render_live, render_snapshot
from crowdstream.stream.readings import CameraReading
from crowdstream.stream.sources import Frame, Status
from crowdstream.stream.zones import Zone


class Event(Protocol):
    """What the event stream sends: its SSE event name, the camera it concerns, and a JSON body."""

    EVENT: ClassVar[str]
    camera: str

    def as_dict(self) -> dict: ...


class LiveSource(Protocol):
    """What the hub needs of a camera reader for live video: the newest frame and a hook called (from
    the reader's thread) after each new one."""

    on_frame: Callable[[], None] | None

    def latest(self, after_seq: int = 0) -> Frame | None: ...


@dataclass(frozen=True)
class Health:
    """A camera's health as the API and the page show it: its status and since when (wall-clock
    seconds), why it went down last (password redacted), how often its reader reconnected, and when
    it tries next (while it waits to retry)."""

    status: Status = "starting"
    since: float = field(default_factory=time.time)
    last_error: str | None = None
    reconnects: int = 0
    next_retry: float | None = None


class CameraFeed:
    """One camera as readers see it. `version` changes whenever there may be something new to show
    (a counted frame, a live frame while watched, a health change); `changed()` waits for that."""

    def __init__(
        self, camera_id: str, name: str, zones: Sequence[Zone], source: LiveSource | None, url: str = ""
    ) -> None:
        self.id, self.name, self.zones = camera_id, name, list(zones)
        self.url = url  # where the camera is read from, its password redacted (so a down camera says which)
        self.fps = 0.0
        self.model = "default"  # the model that counts it, as named in the config
        self.counted: Counted | None = None
        self.version = 0
        self.health = Health()
        self._source = source
        self._signal = asyncio.Event()
        self._on_frame: Callable[[], None] | None = None  # set while watched
        self._snapshot: tuple[int, np.ndarray] | None = None
        self._snapshot_lock = threading.Lock()
        self._live: tuple[tuple[int, int, int], asyncio.Future[Picture]] | None = None

    @property
    def status(self) -> Status:
        return self.health.status

    @status.setter
    def status(self, status: Status) -> None:
        self.update_health(status, self.health.last_error, self.health.reconnects, self.health.next_retry)

    def update_health(
        self, status: Status, last_error: str | None, reconnects: int, next_retry: float | None
    ) -> None:
        """Take the reader's health; a new status starts a new `since`, and any change wakes viewers."""
        since = self.health.since if status == self.health.status else time.time()
        health = Health(status, since, last_error, reconnects, next_retry)
        if health != self.health:
            self.health = health
            self._changed()

    def set_zones(self, zones: Sequence[Zone]) -> None:
        """Draw these zones from now on (edited in the page); the snapshot is drawn again."""
        self.zones = list(zones)
        with self._snapshot_lock:
            self._snapshot = None
        self._live = None
        self._changed()

    @property
    def reading(self) -> CameraReading | None:
        return self.counted.reading if self.counted else None

    @property
    def source(self) -> LiveSource | None:
        return self._source

    @source.setter
    def source(self, source: LiveSource | None) -> None:
        """Point at a new reader (a reopened camera), moving the live hook over if watched."""
        if self._source is not None:
            self._source.on_frame = None
        self._source = source
        if source is not None:
            source.on_frame = self._on_frame
        self._changed()

    def publish(self, frame: Frame, density: np.ndarray, reading: CameraReading) -> None:
        seq = self.counted.seq + 1 if self.counted else 1
        self.counted = Counted(frame, density, reading, seq)
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._signal.set()
        self._signal = asyncio.Event()

    async def changed(self, version: int, timeout: float) -> bool:
        """Wait until `version` is out of date (True) or `timeout` seconds pass (False)."""
        if self.version != version:
            return True
        try:
            await asyncio.wait_for(self._signal.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def watch(self, watched: bool) -> None:
        """While watched, every new frame of the reader wakes the viewers (through the running loop)."""
        if watched:
            loop = asyncio.get_running_loop()

            def on_frame() -> None:  # in the reader's thread; the loop may have closed (shutdown)
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._changed)

            self._on_frame = on_frame
        else:
            self._on_frame = None
        if self._source is not None:
            self._source.on_frame = self._on_frame

    def snapshot(self) -> np.ndarray | None:
        """The newest counted frame annotated, full size, rendered once per counted frame (any thread)."""
        counted = self.counted
        if counted is None:
            return None
        with self._snapshot_lock:
            if self._snapshot is None or self._snapshot[0] != counted.seq:
                self._snapshot = (counted.seq, render_snapshot(counted, self.zones))
            return self._snapshot[1]

    def live_frame(self) -> Frame | None:
        """The newest frame to show live: the reader's, else the last counted one."""
        newest = self._source.latest() if self._source is not None else None
        return newest or (self.counted.frame if self.counted else None)

    async def live_picture(self, width: int) -> Picture | None:
        """The newest frame with the newest overlay at `width`: rendered in a thread once per frame and
        count, and shared by every viewer that asks meanwhile."""
        frame, counted = self.live_frame(), self.counted
        if frame is None:
            return None
        key = (frame.seq, counted.seq if counted else 0, width)
        live = self._live
        if live is None or live[0] != key or _failed(live[1]):
            render = asyncio.ensure_future(asyncio.to_thread(render_live, frame, counted, self.zones, key))
            self._live = live = (key, render)
        return await asyncio.shield(live[1])


def _failed(task: asyncio.Future) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


class Hub:
    """Cameras by id, the number of live viewers (the live view renders only watched cameras), and a
    fan-out of readings to subscribers through bounded queues that drop the oldest item when a reader is
    slow."""

    def __init__(self) -> None:
        self.cameras: dict[str, CameraFeed] = {}
        self.viewers: dict[str, int] = {}
        self._subscribers: set[asyncio.Queue] = set()
        self.started = time.time()
        self.ready = False

    def add_camera(
        self,
        camera_id: str,
        name: str,
        zones: Sequence[Zone],
        source: LiveSource | None = None,
        url: str = "",
    ) -> CameraFeed:
        """Show a camera; `url` is its source as the API may show it (any password already redacted)."""
        feed = CameraFeed(camera_id, name, zones, source, url)
        self.cameras[camera_id] = feed
        return feed

    def watching(self, camera_id: str) -> bool:
        return self.viewers.get(camera_id, 0) > 0

    def add_viewer(self, camera_id: str, delta: int = 1) -> None:
        """Count a viewer in (+1) or out (-1); the first in and the last out switch live frames on and off."""
        was = self.watching(camera_id)
        self.viewers[camera_id] = max(0, self.viewers.get(camera_id, 0) + delta)
        feed = self.cameras.get(camera_id)
        if feed is not None and was != self.watching(camera_id):
            feed.watch(self.watching(camera_id))

    def subscribe(self, maxsize: int = 256) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    def publish(self, camera: str, frame: Frame, density: np.ndarray, reading: CameraReading) -> None:
        """One counted frame: the camera's feed moves on (waking its viewers) and every subscriber gets the
        reading, without ever blocking."""
        self.cameras[camera].publish(frame, density, reading)
        self._fan_out(reading)

    def publish_alert(self, alert: Alert) -> None:
        """An alert started, reached a new peak or ended: every subscriber gets it."""
        self._fan_out(alert)

    def publish_event(self, item: Event) -> None:
        """Any other news of a camera (a fine-tuning job's progress): every subscriber gets it."""
        self._fan_out(item)

    def _fan_out(self, item: Event) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(item)
