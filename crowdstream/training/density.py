"""Ground-truth density maps from head points: fixed Gaussian, geometry-adaptive Gaussian, or disc.

Each head contributes exactly one person to the map: a kernel cut by the image border is renormalised over
the pixels that remain, so the integral equals the number of heads to float precision. The work is
vectorised (heads are grouped by kernel radius and accumulated with one `bincount` per group).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

Method = Literal["gaussian", "adaptive", "disc"]
METHODS: tuple[str, ...] = ("gaussian", "adaptive", "disc")

_CHUNK_ELEMENTS = 4_000_000  # bound on the (heads × kernel pixels) work array per group


@dataclass(frozen=True)
class DensityConfig:
    """How heads become density. `adaptive`: sigma = beta × mean distance to the k nearest heads,
    clipped to [min_sigma, max_sigma]; a head with no neighbour gets `sigma`."""

    method: Method = "adaptive"
    sigma: float = 4.0
    beta: float = 0.3
    k: int = 3
    min_sigma: float = 1.0
    max_sigma: float = 30.0
    disc_radius: float = 4.0
    truncate: float = 3.0


def adaptive_sigmas(points: np.ndarray, config: DensityConfig = DensityConfig()) -> np.ndarray:
    """Per-head sigma from the geometry of its neighbours (Zhang et al., MCNN)."""
    n = len(points)
    if n < 2:
        return np.full(n, config.sigma, dtype=np.float64)
    k = min(config.k, n - 1)
    distances, _ = cKDTree(points).query(points, k=k + 1)
    sigmas = config.beta * distances[:, 1:].mean(axis=1)
    return np.clip(sigmas, config.min_sigma, config.max_sigma)


def density_map(
    points: np.ndarray, height: int, width: int, config: DensityConfig = DensityConfig()
) -> np.ndarray:
    """A (height, width) float32 map whose sum is the number of points inside the image."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
    points = points[inside]
    flat = np.zeros(height * width, dtype=np.float64)
    if len(points) == 0:
        return flat.reshape(height, width).astype(np.float32)
    if config.method == "disc":
        radii = np.full(len(points), config.disc_radius)
    elif config.method == "adaptive":
        radii = adaptive_sigmas(points, config)
    elif config.method == "gaussian":
        radii = np.full(len(points), config.sigma)
    else:
        raise ValueError(f"unknown density method {config.method!r}; choose one of {', '.join(METHODS)}")
    half_widths = np.ceil(radii * (1.0 if config.method == "disc" else config.truncate)).astype(int)
    half_widths = np.clip(half_widths, 1, max(height, width))
    for half in np.unique(half_widths):
        chosen = np.flatnonzero(half_widths == half)
        per_chunk = max(1, _CHUNK_ELEMENTS // (2 * half + 1) ** 2)
        for start in range(0, len(chosen), per_chunk):
            index = chosen[start : start + per_chunk]
            _accumulate(flat, points[index], radii[index], int(half), height, width, config.method)
    return flat.reshape(height, width).astype(np.float32)


def _accumulate(
    flat: np.ndarray, points: np.ndarray, radii: np.ndarray, half: int, height: int, width: int, method: str
) -> None:
    """Add one normalised kernel per point into the flattened map."""
    offsets = np.arange(-half, half + 1)
    cx = np.floor(points[:, 0]).astype(int)
    cy = np.floor(points[:, 1]).astype(int)
    xs = cx[:, None] + offsets[None, :]  # (N, K)
    ys = cy[:, None] + offsets[None, :]
    in_x = (xs >= 0) & (xs < width)
    in_y = (ys >= 0) & (ys < height)
    dx = xs + 0.5 - points[:, :1]
    dy = ys + 0.5 - points[:, 1:]
    if method == "disc":
        inside = (dx[:, None, :] ** 2 + dy[:, :, None] ** 2) <= radii[:, None, None] ** 2
        kernel = (inside & in_y[:, :, None] & in_x[:, None, :]).astype(np.float64)
        # the centre pixel always belongs, so a disc smaller than a pixel still holds its person
        kernel[:, half, half] = 1.0
        kernel /= kernel.sum(axis=(1, 2), keepdims=True)
    else:  # separable Gaussian: renormalising each axis over in-image pixels renormalises the 2D kernel
        inv = 1.0 / (2.0 * radii[:, None] ** 2)
        gx = np.exp(-(dx**2) * inv) * in_x
        gy = np.exp(-(dy**2) * inv) * in_y
        gx /= gx.sum(axis=1, keepdims=True)
        gy /= gy.sum(axis=1, keepdims=True)
        kernel = gy[:, :, None] * gx[:, None, :]
    valid = in_y[:, :, None] & in_x[:, None, :]
    flat_index = ys[:, :, None] * width + xs[:, None, :]
    flat += np.bincount(flat_index[valid], weights=kernel[valid], minlength=flat.size)
