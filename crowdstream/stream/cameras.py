"""The camera readers of one worker: opened from the configuration, pointed at the worker, closed and
stopped together. The service (which also follows camera leases) and `bench stream` share it, so a
camera is opened the same way wherever it is counted."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from crowdstream.stream.config import CameraConfig, ServiceConfig
from crowdstream.stream.sources import Source, open_source
from crowdstream.stream.worker import IdleSource, Worker


def check_sources(cameras: Sequence[CameraConfig]) -> None:
    """Raise SourceError for a camera URL that can never work (unknown scheme, missing file), before
    anything is started; the readers made to check are dropped unstarted."""
    for camera in cameras:
        open_source(camera.id, camera.url, loop=camera.loop)


class Cameras:
    """`sources` holds the readers this worker runs, by camera id."""

    def __init__(self, worker: Worker, config: ServiceConfig) -> None:
        self.worker, self.config = worker, config
        self.sources: dict[str, Source] = {}

    def open(self, camera: CameraConfig) -> None:
        """Start a camera's reader and let the worker count it (keeping its state if it was known)."""
        source = open_source(
            camera.id, camera.url, loop=camera.loop, counted_fps=camera.max_fps, decode=self.config.decode
        )
        source.start()
        self.sources[camera.id] = source
        if camera.id in self.worker.tasks:
            self.worker.replace_source(camera.id, source)
        else:
            self.worker.add_camera(camera, source, self.config.zones_of(camera))

    def idle(self, camera: CameraConfig) -> None:
        """Know a camera without reading it (in cluster mode, another worker counts it)."""
        if camera.id not in self.worker.tasks:
            self.worker.add_camera(camera, IdleSource(), self.config.zones_of(camera))

    async def close(self, camera_id: str) -> None:
        """Stop reading a camera; the worker keeps it, idle."""
        source = self.sources.pop(camera_id)
        self.worker.replace_source(camera_id, IdleSource())
        await asyncio.to_thread(source.stop)

    async def stop_all(self, timeout: float = 5.0) -> None:
        """Stop every reader at once; one stuck in a blocking read ends by itself at its read timeout."""
        stops = [asyncio.to_thread(source.stop, timeout) for source in self.sources.values()]
        await asyncio.gather(*stops, return_exceptions=True)
