"""Engine speed on real frames: inputs per second and latency percentiles per backend and batch size,
plus the time to count one 1024×768 frame with all its tiles (tiling, inference, stitching).

Every measurement starts with warm-up calls (first calls allocate memory, pick kernels, capture CUDA
graphs) that are not timed. Batches are drawn from tiles of real images cut by engines.preprocess.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.counting import count_frames
from engines.engine import Engine, load_engine
from engines.frames import DEFAULT_DATA_ROOT, frame_paths, read_frame, shanghaitech_images, spread
from engines.preprocess import prepare_frame

FRAME_SIZE = (1024, 768)
"""(width, height) of the whole-frame measurement: a typical camera frame size."""


@dataclass(frozen=True)
class BenchRow:
    """One measurement. `mode` is `batch` (engine.infer on `batch` tiles) or `frame` (count_frames on
    one FRAME_SIZE frame, `batch` being its tile count); latencies are per call in milliseconds."""

    backend: str
    model: str
    mode: str
    batch: int
    inputs_per_second: float
    latency_ms_p50: float
    latency_ms_p99: float
    calls: int

    def as_dict(self) -> dict:
        return asdict(self)


def load_frames(
    source: Path | None = None, data_root: Path = DEFAULT_DATA_ROOT, count: int = 16
) -> list[np.ndarray]:
    """`count` real frames: from `source` (file or folder) if given, else ShanghaiTech images."""
    paths = frame_paths(source) if source else shanghaitech_images(data_root, "all")
    return [read_frame(p) for p in spread(paths, count)]


def time_calls(call: Callable[[], object], calls: int, warmup: int) -> np.ndarray:
    """Seconds per call over `calls` timed calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    seconds = np.empty(calls)
    for index in range(calls):
        started = time.perf_counter()
        call()
        seconds[index] = time.perf_counter() - started
    return seconds


def summarise(engine: Engine, model: str, mode: str, batch: int, seconds: np.ndarray) -> BenchRow:
    p50, p99 = np.percentile(seconds, [50, 99])
    return BenchRow(
        engine.backend,
        model,
        mode,
        batch,
        round(batch / p50, 1),
        round(p50 * 1e3, 2),
        round(p99 * 1e3, 2),
        len(seconds),
    )


def bench_batches(
    engine: Engine,
    model: str,
    tiles: np.ndarray,
    batches: list[int],
    inputs: int = 256,
    min_calls: int = 20,
    warmup: int = 3,
) -> list[BenchRow]:
    """engine.infer at each batch size, for about `inputs` tiles (at least `min_calls` calls)."""
    rows = []
    for batch in batches:
        repeats = np.resize(np.arange(len(tiles)), batch)  # cycle the pool when it is smaller than a batch
        inputs_batch = np.ascontiguousarray(tiles[repeats])
        calls = max(min_calls, math.ceil(inputs / batch))
        rows.append(
            summarise(
                engine,
                model,
                "batch",
                batch,
                time_calls(lambda b=inputs_batch: engine.infer(b), calls, warmup),
            )
        )
    return rows


def bench_frame(engine: Engine, model: str, frame: np.ndarray, calls: int = 30, warmup: int = 3) -> BenchRow:
    """count_frames on one frame resized to FRAME_SIZE: what a camera tick costs end to end."""
    frame = cv2.resize(frame, FRAME_SIZE, interpolation=cv2.INTER_AREA)
    tiles = prepare_frame(frame)[1].count
    return summarise(
        engine, model, "frame", tiles, time_calls(lambda: count_frames(engine, [frame]), calls, warmup)
    )


def run_bench(
    models: list[str],
    backends: list[str],
    batches: list[int],
    frames: list[np.ndarray],
    threads: int = 0,
    inputs: int = 256,
    warmup: int = 3,
    progress: Callable[[str], None] = lambda _message: None,
) -> list[BenchRow]:
    """Every model × backend: the batch sweep, then the whole-frame measurement."""
    tiles = np.concatenate([prepare_frame(f)[0] for f in frames])
    rows = []
    for model in models:
        for backend in backends:
            engine = load_engine(model, backend, threads=threads)
            progress(
                f"{engine.backend} {model}: batches {' '.join(map(str, batches))} on {len(tiles)} real tiles"
            )
            rows += bench_batches(engine, str(model), tiles, batches, inputs, warmup=warmup)
            progress(
                f"{engine.backend} {model}: one {FRAME_SIZE[0]}x{FRAME_SIZE[1]} frame with all its tiles"
            )
            rows.append(bench_frame(engine, str(model), frames[0], warmup=warmup))
    return rows


def format_table(rows: list[BenchRow]) -> str:
    header = (
        f"{'backend':<12} {'model':<22} {'mode':<6} {'batch':>5} {'inputs/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        model = r.model if len(r.model) <= 22 else "…" + r.model[-21:]
        lines.append(
            f"{r.backend:<12} {model:<22} {r.mode:<6} {r.batch:>5} {r.inputs_per_second:>9.1f} "
            f"{r.latency_ms_p50:>8.2f} {r.latency_ms_p99:>8.2f}"
        )
    return "\n".join(lines)
