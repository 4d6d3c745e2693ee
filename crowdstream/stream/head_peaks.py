"""Head positions from a density map: the marks the annotation view starts from.

The model spreads each person's unit of mass over a small blob, so the blobs' peaks are where it
believes heads are. The operator then only corrects what is wrong instead of clicking every head.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_PEAK = 1e-3
"""A local maximum weaker than this (people per map pixel) is background noise, not a head."""


def head_positions(
    density: np.ndarray, frame_size: tuple[int, int], count: float | None = None
) -> np.ndarray:
    """(N, 2) float [x, y] in frame pixels of the N strongest local maxima of `density`, strongest
    first; N is `count` rounded (default: the map's integral), fewer when the map has fewer peaks.

    A local maximum is a pixel no smaller than its 8 neighbours; of a flat top, a pixel is dropped
    when an equal maximum touches it from the left or above, so each top counts once. Points sit at
    map-pixel centres scaled to `frame_size` (width, height)."""
    density = np.asarray(density, dtype=np.float32)
    wanted = round(float(density.sum(dtype=np.float64)) if count is None else count)
    if wanted <= 0 or density.size == 0:
        return np.zeros((0, 2))
    kernel = np.ones((3, 3), np.uint8)
    neighbourhood = cv2.dilate(density, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    peaks = (density >= neighbourhood) & (density > MIN_PEAK)
    peaks &= ~_equal_peak_before(density, peaks)
    rows, cols = np.nonzero(peaks)
    order = np.lexsort((cols, rows, -density[rows, cols]))[:wanted]  # strongest first, then reading order
    width, height = frame_size
    points = np.stack([cols[order], rows[order]], axis=1).astype(np.float64) + 0.5
    return points * [width / density.shape[1], height / density.shape[0]]


def _equal_peak_before(density: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Peaks with an equal peak as their left, upper-left, upper or upper-right neighbour."""
    padded = np.pad(np.where(peaks, density, np.nan), 1, constant_values=np.nan)
    height, width = density.shape
    found = np.zeros_like(peaks)
    for dy, dx in ((0, -1), (-1, -1), (-1, 0), (-1, 1)):
        neighbour = padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        found |= neighbour == density
    return found & peaks
