"""`crowdstream serve`: sources, the counting worker, Redis and Prometheus publishing, camera leases and
the web app, wired together and shut down in order.

Shutdown (SIGINT/SIGTERM) finishes the cycle in flight, releases leases, flushes the Redis backlog, stops
the sources and the web server, and returns well within 10 s so an orchestrator never has to SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.spec import Engine
from crowdstream.stream.alert_store import AlertStore
from crowdstream.stream.alerts import AlertTracker
from crowdstream.stream.camera_models import CameraModels
from crowdstream.stream.camera_settings import CameraSettings
from crowdstream.stream.cameras import Cameras, check_sources
from crowdstream.stream.config import CameraConfig, ServiceConfig, load_config
from crowdstream.stream.finetune_jobs import FinetuneJobs
from crowdstream.stream.hub import Hub
from crowdstream.stream.metrics import StreamMetrics
from crowdstream.stream.redis_publisher import RedisPublisher, counts_key
from crowdstream.stream.redis_server import EmbeddedRedis, RedisInfo, announce_redis
from crowdstream.stream.web.listen import bind_socket
from crowdstream.stream.worker import Worker, load_worker_engine
from crowdstream.stream.zone_editor import ZoneEditor

if TYPE_CHECKING:
    from crowdstream.stream.leases import CameraLeases

log = logging.getLogger(__name__)

SHUTDOWN_BUDGET = 8.0
"""Seconds from SIGTERM to exit; orchestrators commonly SIGKILL after 10."""
SOURCE_STOP_TIMEOUT = 2.0
LEASE_POLL = 0.5


@dataclass
class Service:
    """Everything `serve` runs; `start()` brings it up, `stop()` takes it down in order."""

    config: ServiceConfig
    config_path: Path | None = None  # the file the zone editor saves to
    check_config: Callable[[Path], object] | None = None  # loads a file as the service was started
    hub: Hub = field(default_factory=Hub)
    metrics: StreamMetrics = field(default_factory=StreamMetrics)
    worker: Worker | None = None
    publisher: RedisPublisher | None = None
    redis_url: str | None = None
    embedded: EmbeddedRedis | None = None
    redis_info: RedisInfo | None = None
    alerts: AlertStore | None = None
    leases: CameraLeases | None = None
    settings: CameraSettings | None = None  # the one owner of the cameras' settings and the file
    models: CameraModels | None = None
    jobs: FinetuneJobs | None = None
    cameras: Cameras | None = None
    runner: web.AppRunner | None = None
    socket: socket.socket | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task] = field(default_factory=list)

    def prepare(self) -> None:
        """Check what can be checked before anything starts: bind the HTTP socket (a port in use, an
        address not of this machine) and check the camera URLs. Raises with nothing left to undo."""
        if self.socket is not None:
            return
        sock = bind_socket(self.config.http)
        try:
            check_sources(self.config.cameras)
        except BaseException:
            sock.close()
            raise
        self.socket = sock

    async def start(self) -> None:
        """`prepare`, then load the model, start Redis, the cameras, the web server and the worker."""
        self.prepare()
        config = self.config
        engine = self._load_engine(config.engine.model)
        await self._start_redis()
        self.alerts = AlertStore(
            self.hub,
            AlertTracker(config.alerts.end_after_s),
            self.redis_url,
            config.redis.prefix,
            config.alerts.keep,
        )
        self.tasks.append(asyncio.create_task(self.alerts.run(), name="alert-writer"))
        self.worker = Worker(
            engine,
            self.hub,
            self.metrics,
            publishers=[p for p in (self.publisher, self.alerts) if p is not None],
            alpha=config.smoothing.alpha,
            max_batch=config.engine.max_batch,
            owns=self._owner_check(),
            record_extra=self._record_extra(),
            model_name=config.engine.model,
            self_check_every=config.engine.self_check_every,
        )
        self.settings = CameraSettings(config, self.config_path, self._checker())
        self.models = CameraModels(self.settings, self.worker, self._load_engine)
        self.models.load_configured()
        self.jobs = FinetuneJobs(config.finetune, self.hub.publish_event, data_root=config.data_root)
        self.cameras = Cameras(self.worker, config)
        for camera in config.cameras:
            self._open_camera(camera)
        await self._start_web()
        self.tasks.append(asyncio.create_task(self.worker.run(self.stop_event), name="worker"))
        if self.leases is not None:
            self.tasks.append(asyncio.create_task(self._follow_leases(), name="lease-follower"))
        self.hub.ready = True
        log.info(
            "serving",
            extra={
                "cameras": len(config.cameras),
                "backend": engine.backend,
                "url": f"http://{config.http.host}:{self.bound_port}/",
                "redis": self.redis_url or "none",
            },
        )

    def _load_engine(self, model: str) -> Engine:
        return load_worker_engine(self.config.engine, model)

    def _checker(self) -> Callable[[Path], object]:
        return self.check_config or load_config

    async def _start_redis(self) -> None:
        redis_config = self.config.redis
        self.redis_url = redis_config.url
        if self.redis_url is None and redis_config.embedded and (executable := shutil.which("redis-server")):
            self.embedded = EmbeddedRedis(executable, redis_config.embedded_port, redis_config.data_dir)
            await self.embedded.start()
            self.redis_url = self.embedded.url
        if self.redis_url is not None:
            self.redis_info = announce_redis(self.redis_url, self.embedded, self._newest_records_command())
        if self.redis_url is None:
            why = "redis.embedded is false" if not redis_config.embedded else "no redis-server on PATH"
            log.warning(f"no redis url and {why}: publishing to Prometheus only")
            if self.config.cluster.enabled:
                raise CrowdstreamError("cluster.enabled needs redis.url (leases live in Redis)")
            return
        self.publisher = RedisPublisher(
            self.redis_url,
            prefix=redis_config.prefix,
            maxlen=redis_config.maxlen,
            backlog=redis_config.backlog,
            metrics=self.metrics,
        )
        self.tasks.append(asyncio.create_task(self.publisher.run(), name="redis-writer"))
        if self.config.cluster.enabled:
            self._start_leases()

    def _newest_records_command(self) -> tuple[str, ...]:
        """The Redis command that reads the first camera's three newest count records."""
        key = counts_key(self.config.redis.prefix, self.config.cameras[0].id)
        return ("XREVRANGE", key, "+", "-", "COUNT", "3")

    def _start_leases(self) -> None:
        from crowdstream.stream.leases import CameraLeases

        cluster = self.config.cluster
        worker_id = cluster.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.leases = CameraLeases(
            self.publisher.client,
            worker_id,
            [c.id for c in self.config.cameras],
            cluster.lease_ms,
            self.config.redis.prefix,
        )
        self.tasks.append(asyncio.create_task(self.leases.run(), name="leases"))
        log.info("cluster mode: counting only cameras this worker leases", extra={"worker": worker_id})

    def _owner_check(self) -> Callable[[str], bool] | None:
        return self.leases.owns if self.leases is not None else None

    def _record_extra(self) -> Callable[[str], dict[str, str | int] | None] | None:
        """In cluster mode every record carries the worker and its lease's fencing token; a camera whose
        lease ended while its frame was being counted gets None, which tells the worker to drop the record
        (another worker may own the camera by now)."""
        leases = self.leases
        if leases is None:
            return None

        def fenced(camera: str) -> dict[str, str | int] | None:
            token = leases.token(camera)
            return None if token is None else {"worker": leases.worker_id, "fence": token}

        return fenced

    def _open_camera(self, camera: CameraConfig) -> None:
        """Open a camera's reader (in cluster mode only while this worker owns it, else it stays idle)."""
        if self.leases is not None and not self.leases.owns(camera.id):
            self.cameras.idle(camera)
        else:
            self.cameras.open(camera)

    async def _follow_leases(self) -> None:
        """Open readers for cameras this worker gained and close those it lost."""
        cameras = {camera.id: camera for camera in self.config.cameras}
        while True:
            for camera_id, camera in cameras.items():
                owned, open_ = self.leases.owns(camera_id), camera_id in self.cameras.sources
                if owned and not open_:
                    log.info("camera lease acquired", extra={"camera": camera_id})
                    self._open_camera(camera)
                elif open_ and not owned:
                    log.info("camera lease lost", extra={"camera": camera_id})
                    await self.cameras.close(camera_id)
                    self.metrics.forget_camera(camera_id)
            await asyncio.sleep(LEASE_POLL)

    async def _start_web(self) -> None:
        from crowdstream.stream.web.app import create_app
        from crowdstream.stream.web.teach import Teach

        http = self.config.http
        app = create_app(
            self.hub,
            http,
            registry=self.metrics.registry,
            redis_url=self.redis_url,
            key_prefix=self.config.redis.prefix,
            redis_info=self.redis_info,
            alerts=self.alerts,
            zone_editor=ZoneEditor(self.settings, self._apply_zones),
            teach=Teach(self.hub, self.config, self.jobs, self.models),
        )
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.SockSite(self.runner, self.socket).start()

    def _apply_zones(self, camera: CameraConfig) -> None:
        """Count, draw and alert with a camera's edited zones from its next frame on; its open alerts
        end (their zones changed)."""
        self.worker.set_zones(camera.id, self.config.zones_of(camera))
        self.alerts.end_camera(camera.id)

    @property
    def bound_port(self) -> int | None:
        """The port the web server listens on (useful with `http.port: 0`)."""
        if self.runner is None or not self.runner.addresses:
            return None
        return self.runner.addresses[0][1]

    async def stop(self) -> None:
        """Finish the cycle in flight, give leases back, flush Redis, close sources and the web server,
        all within SHUTDOWN_BUDGET seconds (each step gets what the earlier ones left)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_BUDGET
        self.hub.ready = False
        self.stop_event.set()
        worker_task = next((t for t in self.tasks if t.get_name() == "worker"), None)
        if worker_task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(worker_task), timeout=max(0.5, deadline - loop.time() - 3)
                )
        await self._cancel_tasks(keep={"redis-writer"})
        if self.jobs is not None:
            await self.jobs.close(grace=1.0)
        if self.alerts is not None:
            await self.alerts.close(timeout=1)
        if self.leases is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.leases.release_all(), timeout=1)
        await self._flush_redis(max(0.5, deadline - loop.time() - 2))
        if self.cameras is not None:
            await self.cameras.stop_all(max(0.2, min(SOURCE_STOP_TIMEOUT, deadline - loop.time() - 0.5)))
        if self.runner is not None:
            await self.runner.cleanup()
        if self.socket is not None:
            self.socket.close()
        if self.worker is not None:
            self.worker.close()
        if self.embedded is not None:
            self.embedded.stop()
        publisher = self.publisher
        log.info(
            "stopped",
            extra={
                "records_written": publisher.written if publisher else 0,
                "records_lost": publisher.backlog if publisher else 0,
            },
        )

    async def _cancel_tasks(self, keep: set[str] = frozenset()) -> None:
        cancelled = [task for task in self.tasks if task.get_name() not in keep]
        for task in cancelled:
            task.cancel()
        await asyncio.gather(*cancelled, return_exceptions=True)
        self.tasks = [task for task in self.tasks if task.get_name() in keep]

    async def _flush_redis(self, timeout: float) -> None:
        if self.publisher is None:
            return
        if not await self.publisher.flush(timeout):
            log.error(
                "redis unreachable at shutdown: count records lost", extra={"records": self.publisher.backlog}
            )
        await self._cancel_tasks()
        await self.publisher.aclose()


async def serve(
    config: ServiceConfig, path: Path | None = None, check: Callable[[Path], object] | None = None
) -> int:
    """Run the service until SIGINT or SIGTERM; returns the exit code (0 after a clean shutdown).
    `path` is the config file it was loaded from and `check` loads a file the same way (the zone
    editor saves there)."""
    service = Service(config, path, check)
    service.prepare()
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    try:
        await service.start()
        await stop_requested.wait()
        log.info("shutting down")
    finally:
        await service.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0
