"""Frames in, density maps and counts out: tiling, one batched inference across all frames, stitching.

The stream calls `count_frames` with the newest frame of every due camera so their tiles share a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.engine import Engine
from engines.preprocess import TileGrid, prepare_frame, stitch

DENSITY_SCALE = 0.25
"""Density maps are kept at a quarter of the frame size: enough for zones and heatmaps, 16× less work."""

MIN_PEOPLE_FOR_DENSEST = 0.5
"""Below this many people a "densest point" is noise, so none is reported."""


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
    scale: float = DENSITY_SCALE,
    max_batch: int = 32,
) -> list[FrameCount]:
    """Count people in several frames with as few engine calls as possible."""
    if not frames:
        return []
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


def densest_point(density: np.ndarray, frame_size: tuple[int, int]) -> tuple[int, int] | None:
    """The frame pixel (x, y) at the centre of the densest blob, or None when the scene is nearly empty."""
    if float(density.sum()) < MIN_PEOPLE_FOR_DENSEST:
        return None
    row, col = np.unravel_index(int(np.argmax(cv2.GaussianBlur(density, (0, 0), 2.0))), density.shape)
    return (
        int((col + 0.5) * frame_size[0] / density.shape[1]),
        int((row + 0.5) * frame_size[1] / density.shape[0]),
    )
