"""`bench stream`: measured throughput, latency and resource use of the real service parts, and the
pieces `bench soak` (crowdstream/stream/soak/) measures with too.

`bench stream` runs N 720p video-file cameras (the bundled demo clip, each decoded by its own reader) through
one worker. Figures, not assertions: tests check behaviour, these commands measure it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from crowdstream.engines.spec import DEFAULT_TILES
from crowdstream.stream.config import ServiceConfig, build_config
from crowdstream.stream.hub import Hub
from crowdstream.stream.metrics import StreamMetrics
from crowdstream.stream.readings import CameraReading
from crowdstream.stream.sources import DEMO_CLIP
from crowdstream.stream.threads import cores_by_group, thread_cpu_seconds

WARMUP_FRAMES = 3
"""Measuring starts once every camera has been counted this often: the engine's first runs, memory
arenas and decoders are warm, so start-up neither slows the throughput nor inflates the RSS growth."""
WARMUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class BenchOptions:
    cameras: int = 8
    max_fps: float = 2.0
    tiles: str = DEFAULT_TILES
    model: str = "default"
    backend: str = "auto"
    sources: tuple[str, ...] = ()  # URLs replacing the first file cameras (e.g. RTSP)
    device: str = "auto"
    max_batch: int = 32

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchOptions:
        return cls(
            args.cameras,
            args.max_fps,
            args.tiles,
            args.model,
            args.backend,
            tuple(getattr(args, "source", None) or ()),
            args.device,
            args.max_batch,
        )

    def config(self, overrides: Mapping[str, Any] | None = None, **sections: dict) -> ServiceConfig:
        """A service config with `cameras` cameras: the given source URLs first, the demo clip for the rest;
        `overrides` sets dotted keys (``{"decode.priority": 0}``) over it."""
        urls = list(self.sources[: self.cameras]) + [str(DEMO_CLIP)] * max(
            0, self.cameras - len(self.sources)
        )
        cameras = [
            {"id": f"cam{i}", "url": url, "max_fps": self.max_fps, "tiles": self.tiles}
            for i, url in enumerate(urls, start=1)
        ]
        engine = {
            "model": self.model,
            "backend": self.backend,
            "device": self.device,
            "max_batch": self.max_batch,
        }
        data = {"cameras": cameras, "engine": engine, **sections}
        return build_config(
            data,
            "benchmark",
            environ={},
            overrides=overrides,
            flags={key: f"--set {key}" for key in overrides or {}},
        )


class FrameAges:
    """A publisher that only records how old each counted frame was when it was published."""

    def __init__(self) -> None:
        self.ages: list[float] = []

    def publish(self, reading: CameraReading, extra: object = None) -> None:
        self.ages.append(reading.frame_age)


class ProcessUsage:
    """CPU time and resident memory of this process (and its threads), from os.times and /proc."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.monotonic(), self._cpu()

    @staticmethod
    def _cpu() -> float:
        times = os.times()
        return times.user + times.system

    def cpu_cores(self) -> float:
        """Average cores busy since construction (2.0 = both cores of a 2-core machine)."""
        return (self._cpu() - self.cpu) / max(1e-9, time.monotonic() - self.wall)

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


def _counter_total(metrics: StreamMetrics, name: str, camera: str) -> float:
    return metrics.registry.get_sample_value(name, {"camera": camera}) or 0.0


@dataclass(frozen=True)
class Totals:
    """Per-camera counters at one moment; differences of two give the figures of a measured window."""

    processed: dict[str, float]
    dropped: float
    reconnects: float

    @classmethod
    def read(cls, metrics: StreamMetrics, cameras: list[str]) -> Totals:
        return cls(
            {c: _counter_total(metrics, "crowd_frames_processed_total", c) for c in cameras},
            sum(_counter_total(metrics, "crowd_frames_dropped_total", c) for c in cameras),
            sum(_counter_total(metrics, "crowd_stream_reconnects_total", c) for c in cameras),
        )

    def fps_since(self, earlier: Totals, seconds: float) -> dict[str, float]:
        return {c: round((n - earlier.processed[c]) / seconds, 3) for c, n in self.processed.items()}


async def warm_up(metrics: StreamMetrics, cameras: list[str]) -> None:
    """Wait until every camera has been counted WARMUP_FRAMES times (or WARMUP_TIMEOUT_S passed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WARMUP_TIMEOUT_S
    while loop.time() < deadline:
        if min(Totals.read(metrics, cameras).processed.values()) >= WARMUP_FRAMES:
            return
        await asyncio.sleep(0.2)


@dataclass
class StreamReport:
    cameras: int
    seconds: float
    tiles: str
    max_fps: float
    backend: str
    fps_per_camera: dict[str, float]
    fps_per_camera_min: float
    fps_per_camera_mean: float
    dropped_frames: int
    frame_age_p50_s: float | None
    frame_age_p95_s: float | None
    inference_mean_s: float | None
    cpu_cores_used: float
    cpu_count: int
    rss_mb: float
    cpu_cores_by_thread: dict[str, float] | None = None

    @classmethod
    def measured(
        cls,
        options: BenchOptions,
        backend: str,
        before: Totals,
        after: Totals,
        elapsed: float,
        ages: FrameAges,
        cores: float,
        **rest,
    ) -> StreamReport:
        """The fields both benchmarks report, from counters read before and after the measured window."""
        fps = after.fps_since(before, elapsed)
        return cls(
            cameras=len(fps),
            seconds=round(elapsed, 1),
            tiles=options.tiles,
            max_fps=options.max_fps,
            backend=backend,
            fps_per_camera=fps,
            fps_per_camera_min=min(fps.values()),
            fps_per_camera_mean=round(sum(fps.values()) / len(fps), 3),
            dropped_frames=int(after.dropped - before.dropped),
            frame_age_p50_s=percentile(ages.ages, 50),
            frame_age_p95_s=percentile(ages.ages, 95),
            cpu_cores_used=round(cores, 2),
            cpu_count=os.cpu_count() or 0,
            **rest,
        )


async def _stream_bench(options: BenchOptions, seconds: float, overrides: Mapping[str, Any]) -> StreamReport:
    from crowdstream.stream.cameras import Cameras
    from crowdstream.stream.worker import Worker, load_worker_engine

    config = options.config(overrides)
    engine = load_worker_engine(config.engine)
    metrics, ages = StreamMetrics(), FrameAges()
    worker = Worker(
        engine,
        Hub(),
        metrics,
        publishers=[ages],
        max_batch=config.engine.max_batch,
        self_check_every=config.engine.self_check_every,  # measured as the service runs it
    )
    cameras = Cameras(worker, config)
    for camera in config.cameras:
        cameras.open(camera)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        ids = [c.id for c in config.cameras]
        await warm_up(metrics, ids)
        before, inference_before = Totals.read(metrics, ids), _histogram(metrics, engine.backend)
        ages.ages.clear()
        usage, threads = ProcessUsage(), thread_cpu_seconds()
        await asyncio.sleep(seconds)
        elapsed, cores = time.monotonic() - usage.wall, usage.cpu_cores()
        by_thread = cores_by_group(threads, thread_cpu_seconds(), elapsed)
        after, inference_after = Totals.read(metrics, ids), _histogram(metrics, engine.backend)
    finally:
        stop.set()
        await running
        await cameras.stop_all()
        worker.close()
    calls = inference_after[1] - inference_before[1]
    mean = round((inference_after[0] - inference_before[0]) / calls, 4) if calls else None
    return StreamReport.measured(
        options,
        engine.backend,
        before,
        after,
        elapsed,
        ages,
        cores,
        inference_mean_s=mean,
        rss_mb=round(ProcessUsage.rss_mb(), 1),
        cpu_cores_by_thread=by_thread,
    )


def _histogram(metrics: StreamMetrics, backend: str) -> tuple[float, float]:
    """(sum, count) of the inference-duration histogram."""
    labels = {"backend": backend}
    registry = metrics.registry
    return (
        registry.get_sample_value("crowd_inference_duration_seconds_sum", labels) or 0.0,
        registry.get_sample_value("crowd_inference_duration_seconds_count", labels) or 0.0,
    )


def run_stream_bench(
    options: BenchOptions, seconds: float = 30.0, overrides: Mapping[str, Any] | None = None
) -> StreamReport:
    return asyncio.run(_stream_bench(options, seconds, overrides or {}))


def print_report(report: StreamReport, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(asdict(report), indent=2))
        return
    for key, value in asdict(report).items():
        print(f"{key:26} {value}")
