"""`bench soak`: the whole service (readers, worker, Redis publisher, web app) counting N cameras of the
demo clip served over a real RTSP server, for M minutes, while that server and the Redis server are
SIGKILLed and restarted on schedule. At the end every record is read back and checked.

Why "0 lost" can be believed: each record carries its camera's `seq` (1, 2, 3, ... as the publisher
was given them), the publisher forgets a record only after Redis acknowledged it, and Redis keeps an
append-only file synced on every write, so what it acknowledged survives a SIGKILL. The soak reads
back the whole Stream of every camera and compares it with 1..N, N the number the publisher handed
out, and checks N against the frames the worker counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.bench import BenchOptions, FrameAges, ProcessUsage, Totals, percentile, warm_up
from crowdstream.stream.redis_server import EmbeddedRedis, free_port
from crowdstream.stream.soak.clip import loop_clip
from crowdstream.stream.soak.faults import Fault, FaultedServers, fault_schedule
from crowdstream.stream.soak.records import check_records
from crowdstream.stream.soak.rtsp_server import RtspServer
from crowdstream.stream.soak.watch import ExceptionWatch
from crowdstream.stream.sources import DEMO_CLIP

if TYPE_CHECKING:
    from crowdstream.stream.config import ServiceConfig
    from crowdstream.stream.redis_publisher import RedisPublisher
    from crowdstream.stream.service import Service

RSS_SAMPLE_S = 10.0
CLIP_MARGIN_S = 180.0
"""The served clip outlasts the run by this much (warm-up included), so no client reaches its end."""
FLUSH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SoakOptions:
    bench: BenchOptions
    minutes: float = 30.0
    rtsp_restarts: int = 2
    redis_restarts: int = 2
    outage_s: float = 5.0
    progress_s: float = 30.0  # 0: silent


@dataclass
class Samples:
    """RSS over the measured window: (seconds since start, MB)."""

    rss: list[tuple[float, float]]

    def at(self, seconds: float) -> float | None:
        """The first sample taken at or after `seconds` (None if the run was shorter)."""
        return next((mb for at, mb in self.rss if at >= seconds), None)

    def growth_after(self, seconds: float) -> float | None:
        """Percent RSS growth from `seconds` to the end."""
        start = self.at(seconds)
        return None if start is None else round(100 * (self.rss[-1][1] - start) / start, 2)


def _servers(workdir: Path, minutes: float, outage_s: float) -> FaultedServers:
    """The RTSP server (the demo clip, looped to outlast the run) and a durable redis-server."""
    if reason := RtspServer.available():
        raise CrowdstreamError(f"bench soak needs the GStreamer RTSP server: {reason}")
    executable = shutil.which("redis-server")
    if executable is None:
        raise CrowdstreamError("bench soak needs redis-server on PATH (apt-get install redis-server)")
    clip = loop_clip(DEMO_CLIP, workdir / "clip.mp4", minutes * 60 + CLIP_MARGIN_S)
    rtsp = RtspServer(free_port(), workdir / "rtsp.log", clip=clip)
    redis = EmbeddedRedis(executable, port=0, data_dir=workdir / "redis")
    return FaultedServers(rtsp, redis, outage_s)


async def _inject_all(
    servers: FaultedServers, schedule: list[Fault], start: float, done: list[Fault]
) -> None:
    for fault in schedule:
        await asyncio.sleep(max(0.0, start + fault.at_s - time.monotonic()))
        await servers.inject(fault)
        done.append(fault)


def _progress(elapsed: float, total: float, publisher: RedisPublisher, rss: float, faults: str) -> None:
    state = "up" if publisher.up else "DOWN"
    print(
        f"soak {elapsed / 60:5.1f}/{total / 60:.1f} min  records {publisher.written}"
        f"  backlog {publisher.backlog} (redis {state})  faults {faults}  rss {rss:.0f} MB",
        file=sys.stderr,
        flush=True,
    )


async def _window(
    service: Service, options: SoakOptions, servers: FaultedServers, start: float
) -> tuple[Samples, list[Fault]]:
    """Sample RSS (and print progress) while the faults run, until the window and the last restart
    are over; returns the samples and the faults done."""
    total = options.minutes * 60
    schedule = fault_schedule(total, options.rtsp_restarts, options.redis_restarts)
    done: list[Fault] = []
    faults = asyncio.create_task(_inject_all(servers, schedule, start, done))
    samples, next_progress = Samples([]), start
    tick = min(RSS_SAMPLE_S, options.progress_s or RSS_SAMPLE_S)
    try:
        while (now := time.monotonic()) < start + total or not faults.done():
            samples.rss.append((round(now - start, 1), round(ProcessUsage.rss_mb(), 1)))
            if options.progress_s and now >= next_progress:
                rss, count = samples.rss[-1][1], f"{len(done)}/{len(schedule)}"
                _progress(now - start, total, service.publisher, rss, count)
                next_progress += options.progress_s
            await asyncio.sleep(min(tick, max(0.5, start + total - now)))
        faults.result()
    finally:
        faults.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await faults
    samples.rss.append((round(time.monotonic() - start, 1), round(ProcessUsage.rss_mb(), 1)))
    return samples, done


async def _measure(service: Service, options: SoakOptions, servers: FaultedServers) -> dict:
    """Warm up, then run the measured window with the faults; the figures of that window."""
    ids = [c.id for c in service.config.cameras]
    await warm_up(service.metrics, ids)
    before, usage, ages = Totals.read(service.metrics, ids), ProcessUsage(), FrameAges()
    service.worker.publishers.append(ages)
    samples, done = await _window(service, options, servers, usage.wall)
    elapsed, cores = time.monotonic() - usage.wall, usage.cpu_cores()
    after = Totals.read(service.metrics, ids)
    fps = after.fps_since(before, elapsed)
    return {
        "seconds": round(elapsed, 1),
        "faults": [{"at_s": f.at_s, "target": f.target} for f in done],
        "fps_per_camera_mean": round(sum(fps.values()) / len(fps), 3),
        "fps_per_camera_min": min(fps.values()),
        "frames_dropped": int(after.dropped - before.dropped),
        "frame_age_p50_s": percentile(ages.ages, 50),
        "frame_age_p95_s": percentile(ages.ages, 95),
        "cpu_cores_used": round(cores, 2),
        "rtsp_reconnects": int(after.reconnects - before.reconnects),
        "rss_mb_at_1min": samples.at(60),
        "rss_mb_at_5min": samples.at(300),
        "rss_mb_at_end": samples.rss[-1][1],
        "rss_growth_after_1min_pct": samples.growth_after(60),
        "rss_growth_after_5min_pct": samples.growth_after(300),
    }


def _service_config(options: SoakOptions, rtsp_url: str, redis_url: str) -> ServiceConfig:
    """Every camera reads the soak's RTSP server (after any --source URLs); counts go to its Redis."""
    bench = options.bench
    sources = bench.sources + (rtsp_url,) * max(0, bench.cameras - len(bench.sources))
    return replace(bench, sources=sources).config(
        http={"port": 0}, redis={"url": redis_url, "maxlen": 10_000_000}
    )


async def _soak(options: SoakOptions) -> dict:
    with tempfile.TemporaryDirectory(prefix="crowdstream-soak-") as scratch:
        servers = _servers(Path(scratch), options.minutes, options.outage_s)
        try:
            await servers.start()
            return await _run_service(options, servers)
        finally:
            servers.stop()


async def _run_service(options: SoakOptions, servers: FaultedServers) -> dict:
    """Start the service on the servers, measure, stop it (which flushes Redis), read every record back."""
    from crowdstream.stream.service import Service

    watch = ExceptionWatch()
    watch.start()
    service = Service(_service_config(options, servers.rtsp.url, servers.redis.url))
    try:
        await service.start()
        report = await _measure(service, options, servers)
        report["redis_flushed"] = await service.publisher.flush(FLUSH_TIMEOUT_S)
    finally:
        await service.stop()
        watch.stop()
    publisher, ids = service.publisher, [c.id for c in service.config.cameras]
    published = {camera: publisher.last_seq.get(camera, 0) for camera in ids}
    per_camera = await check_records(
        servers.redis.url, service.config.redis.prefix, publisher.run_id, published
    )
    counted = Totals.read(service.metrics, ids).processed
    return {
        "cameras": len(ids),
        "backend": service.worker.engine.backend,
        **report,
        "redis_reconnects": publisher.outages,
        "redis_replays_refused": publisher.replays_refused,
        "redis_backlog_dropped": publisher.dropped,
        "records": summarize(per_camera, counted, published),
        "exceptions": watch.as_dict(),
        "clean_exceptions": watch.clean,
    }


def summarize(per_camera: dict[str, dict], counted: dict[str, float], published: dict[str, int]) -> dict:
    """Totals over cameras, and frames counted but never handed to the publisher."""
    keys = (
        "expected",
        "records",
        "missing",
        "duplicated",
        "out_of_order",
        "unexpected",
        "unparsable",
        "other_runs",
    )
    totals = {key: sum(camera[key] for camera in per_camera.values()) for key in keys}
    totals["counted_not_published"] = int(sum(counted.values()) - sum(published.values()))
    totals["per_camera"] = per_camera
    return totals


def run_soak(options: SoakOptions) -> dict:
    return asyncio.run(_soak(options))
