"""Engine speed on real frames: inputs per second and latency percentiles per backend and batch size,
plus frames per second when whole 1024×768 frames are counted in batches of frames, end to end
(tiling, upload, inference, stitching, the maps back in host memory).

Every measurement starts with warm-up calls (first calls allocate memory, pick kernels, capture CUDA
graphs) that are not timed. Batches are drawn from tiles of real images cut by engines.preprocess.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from crowdstream.engines.counting import count_frames
from crowdstream.engines.data_root import resolve_data_root
from crowdstream.engines.engine import load_engine
from crowdstream.engines.frames import frame_paths, read_frame, shanghaitech_images, spread
from crowdstream.engines.preprocess import prepare_frame
from crowdstream.engines.spec import DEFAULT_TILES, Engine
from crowdstream.engines.table import Column

FRAME_SIZE = (1024, 768)
"""(width, height) of the whole-frame measurement: a typical camera frame size."""


@dataclass(frozen=True)
class BenchRow:
    """One measurement. `mode` is `batch` (engine.infer on `batch` tiles) or `frame` (count_frames on
    `batch` FRAME_SIZE frames at once, with `frames_per_second`); latencies are per call in milliseconds
    and `inputs_per_second` counts model inputs (tiles) in both modes."""

    backend: str
    model: str
    mode: str
    batch: int
    inputs_per_second: float
    latency_ms_p50: float
    latency_ms_p99: float
    calls: int
    frames_per_second: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def load_frames(source: Path | None, data_root: Path | None, count: int = 16) -> list[np.ndarray]:
    """`count` real frames: from `source` (file or folder) if given, else the ShanghaiTech images under
    the data root (named by `--data-root`, `$CROWDSTREAM_DATA` or a one-line error, see engines.data_root)."""
    paths = frame_paths(source) if source else shanghaitech_images(resolve_data_root(data_root), "all")
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


def summarise(
    engine: Engine, model: str, mode: str, batch: int, seconds: np.ndarray, inputs_per_call: int | None = None
) -> BenchRow:
    """A row from per-call seconds. In frame mode `batch` counts frames and `inputs_per_call` the model
    inputs they cost (tiles, and refinement windows with adaptive tiling)."""
    p50, p99 = np.percentile(seconds, [50, 99])
    return BenchRow(
        engine.backend,
        model,
        mode,
        batch,
        round((inputs_per_call or batch) / p50, 1),
        round(p50 * 1e3, 2),
        round(p99 * 1e3, 2),
        len(seconds),
        round(batch / p50, 1) if mode == "frame" else None,
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


def bench_frames(
    engine: Engine,
    model: str,
    frames: list[np.ndarray],
    frame_batches: list[int],
    max_batch: int = 32,
    inputs: int = 256,
    min_calls: int = 10,
    warmup: int = 3,
    tiles: str = DEFAULT_TILES,
) -> list[BenchRow]:
    """count_frames on `n` different real frames resized to FRAME_SIZE per call, for each n, for about
    `inputs` model inputs (at least `min_calls` calls): what a worker's cycle over n cameras costs end to
    end, from frames in host memory to counts and maps."""
    sized = [cv2.resize(f, FRAME_SIZE, interpolation=cv2.INTER_AREA) for f in frames]
    rows = []
    for n in frame_batches:
        batch = [sized[i % len(sized)] for i in range(n)]
        per_call = sum(r.inputs for r in count_frames(engine, batch, tiles, max_batch=max_batch))
        calls = max(min_calls, math.ceil(inputs / per_call))
        count = partial(count_frames, engine, batch, tiles, max_batch=max_batch)
        rows.append(summarise(engine, model, "frame", n, time_calls(count, calls, warmup), per_call))
    return rows


def run_bench(
    models: list[str],
    backends: list[str],
    batches: list[int],
    frames: list[np.ndarray],
    threads: int = 0,
    inputs: int = 256,
    warmup: int = 3,
    progress: Callable[[str], None] = lambda _message: None,
    frame_batches: tuple[int, ...] = (1, 8),
    max_batch: int = 32,
    device: str = "auto",
    tiles: str = DEFAULT_TILES,
) -> list[BenchRow]:
    """Every model × backend: the batch sweep, then whole frames in batches of `frame_batches` frames."""
    pool = np.concatenate([prepare_frame(f)[0] for f in frames])
    rows = []
    for model in models:
        for backend in backends:
            engine = load_engine(model, backend, threads=threads, device=device)
            progress(
                f"{engine.backend} {model}: batches {' '.join(map(str, batches))} on {len(pool)} real tiles"
            )
            rows += bench_batches(engine, str(model), pool, batches, inputs, warmup=warmup)
            progress(
                f"{engine.backend} {model}: {FRAME_SIZE[0]}x{FRAME_SIZE[1]} frames, "
                f"{' '.join(map(str, frame_batches))} per call, {tiles} tiling, end to end"
            )
            rows += bench_frames(
                engine, str(model), frames, list(frame_batches), max_batch, inputs, warmup=warmup, tiles=tiles
            )
    return rows


BENCH_COLUMNS = (
    Column("backend", 12, lambda r: r.backend, left=True),
    Column("model", 22, lambda r: r.model if len(r.model) <= 22 else "…" + r.model[-21:], left=True),
    Column("mode", 6, lambda r: r.mode, left=True),
    Column("batch", 5, lambda r: str(r.batch)),
    Column("inputs/s", 9, lambda r: f"{r.inputs_per_second:.1f}"),
    Column("frames/s", 9, lambda r: None if r.frames_per_second is None else f"{r.frames_per_second:.1f}"),
    Column("p50 ms", 8, lambda r: f"{r.latency_ms_p50:.2f}"),
    Column("p99 ms", 8, lambda r: f"{r.latency_ms_p99:.2f}"),
)
"""`bench engine`'s table of BenchRows: batch rows count tiles per call in `batch`, frame rows whole
frames (with frames/s)."""
