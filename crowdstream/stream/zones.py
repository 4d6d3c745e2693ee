"""Zones: polygons in frame pixels that count the people inside them from a density map.

A density map may be smaller than the frame (the worker keeps it at a quarter of the frame size), so a
zone rasterises its polygon at the map's scale with fractional edge coverage: a person whose density
straddles the border is split between inside and outside instead of snapping to one side.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

MAX_POINTS = 256
MAX_COORDINATE = 100_000  # far beyond any camera's frame; bounds the geometry's arithmetic
_SUPERSAMPLE = 4  # sub-pixels per map pixel on a side when rasterising edges


def _side(edges_from: np.ndarray, edges: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[i, j]: the cross product of edge j with point i seen from the edge's start (0: collinear)."""
    rel = points[:, None, :] - edges_from[None, :, :]
    return edges[None, :, 0] * rel[..., 1] - edges[None, :, 1] * rel[..., 0]


def _within(start: np.ndarray, end: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[i, j]: whether point i lies in the bounding box of edge j (on the edge, when collinear with it)."""
    low, high = np.minimum(start, end), np.maximum(start, end)
    inside = (low[None, :, :] <= points[:, None, :]) & (points[:, None, :] <= high[None, :, :])
    return inside.all(axis=2)


def crossing_edges(polygon: np.ndarray) -> tuple[int, int] | None:
    """The first pair of non-neighbouring edges (i < j) of a closed polygon that share a point (touching
    counts), or None. Every pair is tested at once with numpy: 256 points take about a millisecond, where
    a Python loop over the same 32,000 pairs took a quarter of a second."""
    start = polygon
    end = np.roll(polygon, -1, axis=0)
    edges = end - start
    d1, d2 = _side(start, edges, start), _side(start, edges, end)  # p's ends against edge q
    d3, d4 = d1.T, d2.T  # q's ends against edge p
    proper = ((d1 > 0) != (d2 > 0)) & ((d3 > 0) != (d4 > 0)) & (d1 != 0) & (d2 != 0) & (d3 != 0) & (d4 != 0)
    on_start, on_end = _within(start, end, start), _within(start, end, end)
    touching = (d1 == 0) & on_start | (d2 == 0) & on_end | (d3 == 0) & on_start.T | (d4 == 0) & on_end.T
    count = len(polygon)
    pairs = np.triu(np.ones((count, count), dtype=bool), k=2)  # neighbours share a vertex by construction
    pairs[0, count - 1] = False
    found = np.argwhere((proper | touching) & pairs)
    return None if not len(found) else (int(found[0][0]), int(found[0][1]))


@functools.lru_cache(maxsize=1024)
def _first_crossing(polygon: bytes) -> tuple[int, int] | None:
    """`crossing_edges` of a polygon given as its float64 bytes, remembered: a zone saved in the editor is
    checked by the config model, then again by the `Zone` the service counts with (in the event loop)."""
    return crossing_edges(np.frombuffer(polygon).reshape(-1, 2))


def polygon_area(points: np.ndarray) -> float:
    """Unsigned area by the shoelace formula, in squared frame pixels."""
    x, y = points[:, 0], points[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2.0


def check_polygon(points: Sequence[Sequence[float]]) -> np.ndarray:
    """Validate a simple polygon and return it as a (K, 2) float array. Raises ValueError saying what is
    wrong: too few or too many points, non-finite or negative coordinates, zero area, self-intersection."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError("a polygon must be a list of [x, y] points")
    if not 3 <= len(array) <= MAX_POINTS:
        raise ValueError(f"a polygon needs 3 to {MAX_POINTS} points, got {len(array)}")
    if not np.isfinite(array).all() or (array < 0).any() or (array > MAX_COORDINATE).any():
        raise ValueError(
            f"polygon points must be finite, non-negative frame pixel coordinates, at most {MAX_COORDINATE}"
        )
    crossing = _first_crossing(array.tobytes())
    if crossing is not None:
        raise ValueError(f"polygon is self-intersecting (edge {crossing[0]} crosses edge {crossing[1]})")
    if polygon_area(array) <= 0:
        raise ValueError("polygon has zero area (its points are collinear or repeated)")
    return array


def fits_frame(polygon: Sequence[Sequence[float]], width: float, height: float) -> bool:
    """Whether every point of a polygon lies inside a width×height frame (its edges included)."""
    points = np.asarray(polygon, dtype=np.float64)
    return bool((points[:, 0] <= width).all() and (points[:, 1] <= height).all())


def scanline_fill(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float32 mask with 1 where a pixel's centre lies inside the polygon (even-odd rule). Pixel (r, c)
    covers [c, c+1) × [r, r+1); unlike cv2.fillPoly, boundaries are not widened by half a pixel."""
    mask = np.zeros((height, width), dtype=np.float32)
    start, end = polygon, np.roll(polygon, -1, axis=0)
    for row in range(height):
        y = row + 0.5
        crosses = (start[:, 1] <= y) != (end[:, 1] <= y)
        if not crosses.any():
            continue
        s, e = start[crosses], end[crosses]
        xs = np.sort(s[:, 0] + (y - s[:, 1]) * (e[:, 0] - s[:, 0]) / (e[:, 1] - s[:, 1]))
        for left, right in zip(xs[0::2], xs[1::2], strict=True):
            first, stop = int(np.ceil(left - 0.5)), int(np.ceil(right - 0.5))
            mask[row, max(first, 0) : max(min(stop, width), 0)] = 1.0
    return mask


@dataclass(frozen=True)
class ZoneReading:
    """People in one zone; `density` is people per m² when the zone has an area, else None."""

    name: str
    count: float
    density: float | None = None
    threshold: float | None = None

    @property
    def over_threshold(self) -> bool:
        value = self.density if self.density is not None else self.count
        return self.threshold is not None and value > self.threshold


@dataclass
class Zone:
    """A named polygon in frame pixels. `area_m2` (the ground area it covers) turns counts into people
    per m²; `threshold` applies to that density when the area is known, otherwise to the count."""

    name: str
    polygon: np.ndarray
    area_m2: float | None = None
    threshold: float | None = None
    _masks: dict[tuple[int, int, int, int], np.ndarray] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.polygon = check_polygon(self.polygon)
        if self.area_m2 is not None and self.area_m2 <= 0:
            raise ValueError(f"zone {self.name!r}: area_m2 must be greater than 0, got {self.area_m2}")

    def fits(self, width: int, height: int) -> bool:
        """Whether every point lies inside a width×height frame."""
        return fits_frame(self.polygon, width, height)

    def mask(self, frame_size: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
        """Fractional coverage (0..1) of each pixel of a `shape` (h, w) map laid over a `frame_size`
        (width, height) frame. Cached per geometry, since a camera's sizes rarely change."""
        key = (*frame_size, *shape)
        if key not in self._masks:
            self._masks[key] = self._rasterise(frame_size, shape)
        return self._masks[key]

    def _rasterise(self, frame_size: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
        height, width = shape
        scale = np.array([width / frame_size[0], height / frame_size[1]]) * _SUPERSAMPLE
        fine = scanline_fill(self.polygon * scale, height * _SUPERSAMPLE, width * _SUPERSAMPLE)
        return cv2.resize(fine, (width, height), interpolation=cv2.INTER_AREA)

    def count(self, density: np.ndarray, frame_size: tuple[int, int]) -> float:
        """People inside the zone: the density map's integral over the polygon."""
        weights = self.mask(frame_size, density.shape[:2])
        return float(np.dot(weights.ravel(), density.ravel().astype(np.float32)))

    def people_per_m2(self, count: float) -> float | None:
        return None if self.area_m2 is None else count / self.area_m2

    def reading(self, density: np.ndarray, frame_size: tuple[int, int]) -> ZoneReading:
        """Count, density and threshold of this zone for one density map."""
        count = self.count(density, frame_size)
        return ZoneReading(self.name, count, self.people_per_m2(count), self.threshold)

    def trigger(self, density: np.ndarray, frame_size: tuple[int, int]) -> bool:
        """Whether the zone is over its threshold for this density map (never without a threshold)."""
        return self.reading(density, frame_size).over_threshold
