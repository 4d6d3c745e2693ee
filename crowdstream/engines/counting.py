"""Frames in, density maps and counts out: tiling, batched inference across all frames, stitching.

The stream calls `count_frames` with the newest frame of every due camera so their tiles share a batch.
With `adaptive` tiling (the default) a second batched call counts the refinement windows of every frame
that has any (engines.adaptive). An engine whose device does the pixel work itself (the PyTorch backend
on CUDA) offers a `frame_counter` (engines.device_counting.DeviceCounter); `count_frames` hands the
frames to it, so every caller (the stream worker, `count`, `eval`, the benchmarks) gets the GPU path
without knowing of it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import cv2
import numpy as np

from crowdstream.engines.adaptive import Window, refinement_windows
from crowdstream.engines.paint import Unpainted, unpaint
from crowdstream.engines.preprocess import (
    TileGrid,
    as_bgr,
    normalise,
    parse_tiles,
    prepare_frame,
    resize_density,
    resize_tile,
    stitch,
)
from crowdstream.engines.spec import DEFAULT_TILES, Engine

DENSITY_SCALE = 0.25
"""Density maps are kept at a quarter of the frame size: enough for zones and heatmaps, 16× less work."""

MIN_PEOPLE_FOR_DENSEST = 0.5
"""Below this many people a "densest point" is noise, so none is reported."""

_TILERS = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="tiling")
"""Threads that cut frames into tiles. OpenCV releases the GIL, so a batch of frames is tiled on every
core; started on first use, they inherit the OS name of the thread that needs them (the stream's
"inference" thread), so per-thread CPU figures count them with it."""


@dataclass
class FrameCount:
    """One frame's result: the stitched density map (frame size × `scale`) and the count.

    `count` is the sum of the model's per-tile counts (the count head where shipped, else the integral),
    with each refinement window's count in place of the first pass's inside that window."""

    density: np.ndarray
    count: float
    grid: TileGrid
    scale: float
    windows: list[Window] = field(default_factory=list)

    @property
    def inputs(self) -> int:
        """Model inputs this frame cost."""
        return self.grid.count + len(self.windows)


def infer_batched(engine: Engine, batch: np.ndarray, max_batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(densities (N, S, S), counts (N,)) in engine calls of at most `max_batch` inputs."""
    densities, counts = [], []
    for start in range(0, len(batch), max_batch):
        density, count = engine.infer(batch[start : start + max_batch])
        densities.append(density[:, 0])
        counts.append(count)
    return np.concatenate(densities), np.concatenate(counts)


def place_window(frame_map: np.ndarray, window: Window, density: np.ndarray, scale: float) -> float:
    """Put a window's density into the frame map in place of what was there; returns the change in count."""
    y0, y1 = round(window.y0 * scale), round(window.y1 * scale)
    x0, x1 = round(window.x0 * scale), round(window.x1 * scale)
    if y1 <= y0 or x1 <= x0:
        return 0.0
    replaced = float(frame_map[y0:y1, x0:x1].sum(dtype=np.float64))
    frame_map[y0:y1, x0:x1] = resize_density(density, y1 - y0, x1 - x0)
    return float(frame_map[y0:y1, x0:x1].sum(dtype=np.float64)) - replaced


def count_frames(
    engine: Engine,
    frames: list[np.ndarray],
    tiles: str | tuple[int, int] = DEFAULT_TILES,
    scale: float = DENSITY_SCALE,
    max_batch: int = 32,
    views: list[Unpainted | None] | None = None,
) -> list[FrameCount]:
    """Count people in several frames with as few engine calls as possible (two with adaptive tiling).
    A frame painted black at its edges is counted as engines.paint shows it to the model, and its density
    put back in place with nothing where the paint was; `grid` and `windows` are then those of the box.
    `views`: each frame's `unpaint` when the caller has it (the stream reuses each camera's last one); None:
    made here."""
    if views is None:
        views = [unpaint(frame) for frame in frames]
    inner = [frame if view is None else view.pixels for frame, view in zip(frames, views, strict=True)]
    results = count_content(engine, inner, tiles, scale, max_batch)
    return [
        result if view is None else in_frame(result, view, frame.shape[:2])
        for result, view, frame in zip(results, views, frames, strict=True)
    ]


def in_frame(result: FrameCount, view: Unpainted, size: tuple[int, int]) -> FrameCount:
    """A painted frame's count from its view's: the density outside the paint, placed at the box in an
    empty map of the frame; the count is what that map holds."""
    x0, y0, x1, y1 = (round(v * result.scale) for v in view.box)
    frame_map = np.zeros(
        (max(1, round(size[0] * result.scale)), max(1, round(size[1] * result.scale))), np.float32
    )
    if y1 > y0 and x1 > x0:
        inside = resize_density(result.density, y1 - y0, x1 - x0)
        frame_map[y0:y1, x0:x1] = inside * view.keep(inside.shape)
    count = (
        result.count - float(result.density.sum(dtype=np.float64)) + float(frame_map.sum(dtype=np.float64))
    )
    return FrameCount(frame_map, max(count, 0.0), result.grid, result.scale, result.windows)


def count_content(
    engine: Engine,
    frames: list[np.ndarray],
    tiles: str | tuple[int, int],
    scale: float,
    max_batch: int,
) -> list[FrameCount]:
    """count_frames without the paint check: every frame counted whole."""
    if not frames:
        return []
    device = getattr(engine, "frame_counter", None)
    if device is not None:
        return device.count(frames, tiles, scale, max_batch)
    prepared = prepare_frames(frames, tiles)
    densities, counts = infer_batched(engine, np.concatenate([inputs for inputs, _ in prepared]), max_batch)
    offsets = np.cumsum([0] + [grid.count for _, grid in prepared])
    results = [
        FrameCount(stitch(densities[a:b], grid, scale), float(counts[a:b].sum()), grid, scale)
        for (_, grid), a, b in zip(prepared, offsets[:-1], offsets[1:], strict=True)
    ]
    if parse_tiles(tiles) == "adaptive":
        for result, a, b in zip(results, offsets[:-1], offsets[1:], strict=True):
            result.windows = refinement_windows(result.grid, densities[a:b])
        _refine(engine, frames, results, max_batch)
    return results


def prepare_frames(
    frames: list[np.ndarray], tiles: str | tuple[int, int]
) -> list[tuple[np.ndarray, TileGrid]]:
    """`prepare_frame` of every frame, in parallel: on the stream's 2-core machine the worker thread was
    the bottleneck while the other core idled (tiling 16 720p frames: 115 -> 61 ms on two threads)."""
    if len(frames) < 2:
        return [prepare_frame(frame, tiles) for frame in frames]
    return list(_TILERS.map(partial(prepare_frame, tiles=tiles), frames))


def _refine(engine: Engine, frames: list[np.ndarray], results: list[FrameCount], max_batch: int) -> None:
    """Count every frame's refinement windows in one batch and put them in place."""
    crops = [
        resize_tile(as_bgr(frame)[w.y0 : w.y1, w.x0 : w.x1])
        for frame, result in zip(frames, results, strict=True)
        for w in result.windows
    ]
    if not crops:
        return
    densities, _ = infer_batched(engine, normalise(np.stack(crops)), max_batch)
    index = 0
    for result in results:
        for window in result.windows:
            result.count += place_window(result.density, window, densities[index], result.scale)
            index += 1


def densest_point(density: np.ndarray, frame_size: tuple[int, int]) -> tuple[int, int] | None:
    """The frame pixel (x, y) at the centre of the densest blob, or None when the scene is nearly empty."""
    if float(density.sum()) < MIN_PEOPLE_FOR_DENSEST:
        return None
    row, col = np.unravel_index(
        int(np.argmax(cv2.GaussianBlur(density, (0, 0), 2.0, borderType=cv2.BORDER_CONSTANT))), density.shape
    )
    return (
        int((col + 0.5) * frame_size[0] / density.shape[1]),
        int((row + 0.5) * frame_size[1] / density.shape[0]),
    )
