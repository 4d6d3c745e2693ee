"""Frames in, density maps and counts out: tiling, one batched inference across all frames, stitching.

The stream calls `count_frames` with the newest frame of every due camera so their tiles share a batch.
An engine whose device does the pixel work itself (the PyTorch backend on CUDA) offers a
`frame_counter` (engines.device_counting.DeviceCounter); `count_frames` hands the frames to it, so every
caller (the stream worker, `count`, `eval`, the benchmarks) gets the GPU path without knowing of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.engine import Engine
from engines.preprocess import TileGrid, prepare_frame, stitch


@dataclass
class FrameCount:
    """One frame's result: the stitched density map (frame size × `scale`) and the count.

    `count` is the sum of the model's per-tile counts (the count head where shipped, else the integral)."""

    density: np.ndarray
    count: float
    grid: TileGrid
    scale: float


def count_frames(
    engine: Engine,
    frames: list[np.ndarray],
    tiles: str | tuple[int, int] = "auto",
    scale: float = 0.25,
    max_batch: int = 32,
) -> list[FrameCount]:
    """Count people in several frames with as few engine calls as possible."""
    if not frames:
        return []
    device = getattr(engine, "frame_counter", None)
    if device is not None:
        return device.count(frames, tiles, scale, max_batch)
    prepared = [prepare_frame(frame, tiles) for frame in frames]
    batch = np.concatenate([inputs for inputs, _ in prepared])
    densities, counts = [], []
    for start in range(0, len(batch), max_batch):
        density, count = engine.infer(batch[start : start + max_batch])
        densities.append(density[:, 0])
        counts.append(count)
    all_density, all_counts = np.concatenate(densities), np.concatenate(counts)
    results, offset = [], 0
    for _, grid in prepared:
        part = slice(offset, offset + grid.count)
        offset += grid.count
        results.append(
            FrameCount(stitch(all_density[part], grid, scale), float(all_counts[part].sum()), grid, scale)
        )
    return results
