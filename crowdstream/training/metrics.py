"""Counting metrics as pure functions of predicted and true counts (or maps).

The field calls root-mean-square error "MSE"; we print it as `rmse` to say exactly what it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BUCKETS: tuple[tuple[int, float], ...] = ((0, 50), (51, 200), (201, 500), (501, float("inf")))
SPARSE_MAX = 50
"""NAE is reported separately on images with at most this many people, where relative error matters most."""


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


def bias_percent(predicted: Sequence[float], truth: Sequence[float]) -> float:
    """Total signed error as a percentage of the total true count: 100 × Σ(p − t) / Σ t.

    Weighted by crowd size on purpose: a bucket's bias % says how far its total is off, which a mean of
    per-image ratios would let a few near-empty images dominate."""
    p, t = _pair(predicted, truth)
    total = t.sum()
    return float(100.0 * (p - t).sum() / total) if total > 0 else float("nan")


def sparse_nae(predicted: Sequence[float], truth: Sequence[float], most: int = SPARSE_MAX) -> float:
    """NAE over the images with 1 to `most` people (the sparse scenes where the model over-counts)."""
    p, t = _pair(predicted, truth)
    chosen = t <= most
    return nae(p[chosen], t[chosen])


def mae_interval(
    predicted: Sequence[float],
    truth: Sequence[float],
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the MAE over images (scipy.stats.bootstrap, fixed seed).

    Resampling images says how much the MAE would move on another hold-out of the same size, which
    is what tells a real improvement from noise. The percentile method is used because it needs no
    jackknife (BCa warns and fails on degenerate samples such as all-equal errors) and is easy to check
    by hand."""
    p, t = _pair(predicted, truth)
    return mean_interval(np.abs(p - t), confidence, resamples, seed)


def mae_delta_interval(
    predicted: Sequence[float],
    baseline: Sequence[float],
    truth: Sequence[float],
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Paired bootstrap interval of MAE(predicted) − MAE(baseline) on the same images.

    Two models' errors on one image are strongly correlated (a hard image is hard for both), so the
    interval of the difference is much narrower than the two MAE intervals side by side: it is the one
    that says whether a change of 1 MAE on 80 part B images is real."""
    p, t = _pair(predicted, truth)
    b, _ = _pair(baseline, truth)
    return mean_interval(np.abs(p - t) - np.abs(b - t), confidence, resamples, seed)


def mean_interval(
    values: np.ndarray, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of per-image values."""
    from scipy.stats import bootstrap

    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1:
        return float(values[0]), float(values[0])  # every resample is that one image
    result = bootstrap(
        (values,),
        np.mean,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


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


def large_error(predicted: float, truth: float) -> bool:
    """An error worth an alert: more than 3 people and more than 30 % of the truth."""
    return abs(predicted - truth) > max(3.0, 0.3 * truth)


def small_error(predicted: float, truth: float) -> bool:
    """A count to trust: within 1 person or 10 % of the truth."""
    return abs(predicted - truth) <= max(1.0, 0.1 * truth)


def flag_rates(predicted: Sequence[float], truth: Sequence[float], flagged: Sequence[bool]) -> dict:
    """How many images were flagged uncertain, and the share flagged among the large errors (should be
    high) and among the small ones (should be low); a share is None (JSON null) when there are none."""
    large = [f for p, t, f in zip(predicted, truth, flagged, strict=True) if large_error(p, t)]
    small = [f for p, t, f in zip(predicted, truth, flagged, strict=True) if small_error(p, t)]
    return {
        "flagged": int(sum(flagged)),
        "large_errors": len(large),
        "large_flagged": float(np.mean(large)) if large else None,
        "small_errors": len(small),
        "small_flagged": float(np.mean(small)) if small else None,
    }


def bucket_name(low: int, high: float) -> str:
    return f"{low}+" if high == float("inf") else f"{low}-{int(high)}"


def errors_by_bucket(predicted: Sequence[float], truth: Sequence[float]) -> dict[str, dict[str, float]]:
    """Image count, MAE, RMSE, bias and bias % per true-crowd-size bucket (0-50, 51-200, 201-500, 501+)."""
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
                "bias_pct": bias_percent(p[chosen], t[chosen]),
            }
    return report


def _pair(predicted: Sequence[float], truth: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=np.float64).ravel()
    t = np.asarray(truth, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"predicted and true counts differ in length: {len(p)} vs {len(t)}")
    return p, t
