"""Adaptive tiling: count the `auto` grid, then look again, at twice the resolution, where heads are too
small and close together for the model to separate.

The first pass is today's tiling. Its density maps say where the crowd is densest: where the people per
output pixel imply heads closer than MIN_HEAD_SPACING input pixels, the tile's densest half-size window is
cut again, resized to the model input (so its heads are twice as large) and counted; that count replaces
the first pass's count inside the window. At most EXTRA_SHARE more inputs than the grid's (rounded up), so
a frame costs at most about 1.5× the `auto` tiling and sparse frames cost nothing extra. Large heads close to
the lens need no coarser pass: the model is trained on tiles zoomed in up to 4×.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

import cv2
import numpy as np

from crowdstream.engines.preprocess import TileGrid
from crowdstream.engines.spec import INPUT_SIZE, OUTPUT_SIZE

MIN_HEAD_SPACING = 8.0
"""Input pixels between neighbouring heads below which a region is counted again at twice the resolution."""
EXTRA_SHARE = 0.5
"""Refinement windows per frame, as a share of the first pass's tiles (rounded up)."""
SMOOTHING = 3
"""Output pixels (a side) over which the local density is averaged before looking for the densest spot."""


@dataclass(frozen=True)
class Window:
    """A frame region (y0, y1, x0, x1) counted again, and how dense the first pass found it."""

    y0: int
    y1: int
    x0: int
    x1: int
    density: float


def head_spacing(people_per_output_pixel: float) -> float:
    """Typical distance between heads, in input pixels, in a crowd of the given density."""
    if people_per_output_pixel <= 0:
        return float("inf")
    return (INPUT_SIZE / OUTPUT_SIZE) / float(np.sqrt(people_per_output_pixel))


def densest_window(tile_density: np.ndarray, box: tuple[int, int, int, int]) -> Window:
    """The half-size window of `box` (frame pixels) centred as near the tile's densest spot as fits."""
    local = cv2.blur(tile_density.astype(np.float32), (SMOOTHING, SMOOTHING))
    row, col = np.unravel_index(int(np.argmax(local)), local.shape)
    y0, y1, x0, x1 = box
    height, width = y1 - y0, x1 - x0
    half_h, half_w = max(1, height // 2), max(1, width // 2)
    centre_y = y0 + (row + 0.5) * height / local.shape[0]
    centre_x = x0 + (col + 0.5) * width / local.shape[1]
    top = int(np.clip(round(centre_y - half_h / 2), y0, y1 - half_h))
    left = int(np.clip(round(centre_x - half_w / 2), x0, x1 - half_w))
    return Window(top, top + half_h, left, left + half_w, float(local[row, col]))


def refinement_windows(grid: TileGrid, densities: np.ndarray) -> list[Window]:
    """The windows to count again for one frame, densest first, within the frame's budget."""
    candidates = []
    for box, tile_density in zip(grid.boxes(), densities, strict=True):
        window = densest_window(tile_density, box)
        if (
            head_spacing(window.density) < MIN_HEAD_SPACING
            and min(window.y1 - window.y0, window.x1 - window.x0) >= 8
        ):
            candidates.append(window)
    candidates.sort(key=lambda w: w.density, reverse=True)
    return candidates[: ceil(grid.count * EXTRA_SHARE)]
