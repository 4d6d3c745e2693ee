"""Counting metrics as pure functions of predicted and true counts (or maps).

The field calls root-mean-square error "MSE"; we print it as `rmse` to say exactly what it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BUCKETS: tuple[tuple[int, float], ...] = ((0, 50), (51, 200), (201, 500), (501, float("inf")))


def mae(predicted: Sequence[float], truth: Sequence[float]) -> float:
    """Mean absolute count error."""
    p, t = _pair(predicted, truth)
    return float(np.abs(p - t).mean()) if len(t) else float("nan")


def rmse(predicted: Sequence[float], truth: Sequence[float]) -> float:
    """Root mean squared count error (the crowd-counting literature's "MSE")."""
    p, t = _pair(predicted, truth)
    return float(np.sqrt(((p - t) ** 2).mean())) if len(t) else float("nan")


def nae(predicted: Sequence[float], truth: Sequence[float]) -> float:
    """Mean of |error| / true count, over images that have people (empty images are skipped)."""
    p, t = _pair(predicted, truth)
    has_people = t > 0
    if not has_people.any():
        return float("nan")
    return float((np.abs(p - t)[has_people] / t[has_people]).mean())


def bias(predicted: Sequence[float], truth: Sequence[float]) -> float:
    """Mean signed error: negative means the model under-counts."""
    p, t = _pair(predicted, truth)
    return float((p - t).mean()) if len(t) else float("nan")


def region_counts_from_points(points: np.ndarray, height: int, width: int, level: int) -> np.ndarray:
    """People per cell of a 2^level × 2^level grid over the image, from head points."""
    cells = 2**level
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    counts, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=cells, range=[[0, height], [0, width]])
    return counts


def region_counts_from_density(density: np.ndarray, level: int) -> np.ndarray:
    """Integral of a density map over each cell of a 2^level × 2^level grid (cells split pixels
    proportionally, so any map resolution works)."""
    cells = 2**level
    h, w = density.shape
    row_weights = _cell_weights(h, cells)  # (cells, h)
    col_weights = _cell_weights(w, cells)  # (cells, w)
    return row_weights @ density.astype(np.float64) @ col_weights.T


def _cell_weights(length: int, cells: int) -> np.ndarray:
    """Fraction of each pixel that falls in each of `cells` equal cells along one axis."""
    edges = np.linspace(0, length, cells + 1)
    starts, ends = np.arange(length), np.arange(length) + 1
    overlap = np.minimum(ends[None, :], edges[1:, None]) - np.maximum(starts[None, :], edges[:-1, None])
    return np.clip(overlap, 0.0, 1.0)


def game_error(density: np.ndarray, points: np.ndarray, height: int, width: int, level: int) -> float:
    """Grid Average Mean absolute Error of one image at one level: sum over cells of |pred − true|."""
    predicted = region_counts_from_density(density, level)
    truth = region_counts_from_points(points, height, width, level)
    return float(np.abs(predicted - truth).sum())


def bucket_name(low: int, high: float) -> str:
    return f"{low}+" if high == float("inf") else f"{low}-{int(high)}"


def errors_by_bucket(predicted: Sequence[float], truth: Sequence[float]) -> dict[str, dict[str, float]]:
    """MAE, RMSE, bias and image count per true-crowd-size bucket (0-50, 51-200, 201-500, 501+)."""
    p, t = _pair(predicted, truth)
    report = {}
    for low, high in BUCKETS:
        chosen = (t >= low) & (t <= high)
        if chosen.any():
            report[bucket_name(low, high)] = {
                "images": int(chosen.sum()),
                "mae": mae(p[chosen], t[chosen]),
                "rmse": rmse(p[chosen], t[chosen]),
                "bias": bias(p[chosen], t[chosen]),
            }
    return report


def _pair(predicted: Sequence[float], truth: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=np.float64).ravel()
    t = np.asarray(truth, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"predicted and true counts differ in length: {len(p)} vs {len(t)}")
    return p, t
