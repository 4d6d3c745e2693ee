"""Deterministic synthetic textures with nobody in them, for the people-free check set (never training).

Each texture is drawn from scratch with NumPy, SciPy and OpenCV primitives from its own random stream
(`TEXTURE_SEED`, then the texture's index and variant): ellipses with a highlight for gravel, random
strokes for grass, staggered rectangles for bricks, a grout grid for tiles, Voronoi cells (nearest seed
point, via a k-d tree) for cobblestones, multi-octave blurred noise for foliage. The training data's
own synthetic negatives come from a different generator and seed, so this set stays independent of it.
Many of these shapes are head-sized blobs on purpose: they are what a counter mistakes for a crowd.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

TEXTURE_SEED = 7919
SIZE = 512
EARTH_LOW, EARTH_HIGH = (0.8, 0.9, 0.95), (0.95, 1.0, 1.1)
"""Per-channel (B, G, R) factors that tint a grey shade towards the browns of stone and soil."""

Painter = Callable[[np.random.Generator, int], np.ndarray]


def _finish(image: np.ndarray, rng: np.random.Generator, noise: float = 6.0) -> np.ndarray:
    """Add sensor-like noise and return BGR uint8."""
    noisy = image.astype(np.float32) + rng.normal(0.0, noise, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def gravel(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Small grey-brown stones, each with a lighter highlight, packed on dark soil."""
    image = np.full((size, size, 3), (40, 45, 50), np.float32)
    for _ in range(size * size // 90):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(4, 13, 2))
        shade = rng.uniform(80, 190)
        colour = tuple(float(shade * f) for f in rng.uniform(EARTH_LOW, EARTH_HIGH))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        light = (centre[0] - axes[0] // 3, centre[1] - axes[1] // 3)
        cv2.ellipse(image, light, (max(1, axes[0] // 3),) * 2, 0, 0, 360, (shade + 50,) * 3, -1, cv2.LINE_AA)
    return _finish(cv2.GaussianBlur(image, (3, 3), 0), rng)


def grass(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Thousands of thin, nearly upright blades in shades of green over a dark green ground."""
    image = np.full((size, size, 3), (20, 60, 25), np.float32)
    for _ in range(size * size // 40):
        x, y = rng.uniform(0, size, 2)
        angle = np.pi / 2 + rng.normal(0, 0.35)
        length = rng.uniform(10, 40)
        end = (int(x + length * np.cos(angle)), int(y - length * np.sin(angle)))
        green = rng.uniform(70, 200)
        colour = (green * rng.uniform(0.2, 0.5), green, green * rng.uniform(0.4, 0.8))
        cv2.line(image, (int(x), int(y)), end, colour, int(rng.integers(1, 3)), cv2.LINE_AA)
    return _finish(image, rng)


def bricks(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A running-bond wall: staggered red-brown bricks with light mortar joints."""
    image = np.full((size, size, 3), (170, 180, 185), np.float32)
    brick_h, brick_w, joint = int(rng.integers(22, 34)), int(rng.integers(60, 90)), 4
    for row, y in enumerate(range(0, size, brick_h)):
        offset = (brick_w // 2) * (row % 2)
        for x in range(-offset, size, brick_w):
            base = np.array([50, 70, 150]) * rng.uniform(0.7, 1.2)
            cv2.rectangle(
                image, (x + joint, y + joint), (x + brick_w - 1, y + brick_h - 1), base.tolist(), -1
            )
    grain = gaussian_filter(rng.normal(0, 1, (size, size)), 1.5)[..., None] * 25
    return _finish(image + grain, rng)


def tiles(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Square floor tiles in two alternating glazes with dark grout."""
    image = np.full((size, size, 3), (60, 60, 60), np.float32)
    side, grout = int(rng.integers(40, 80)), 3
    glazes = rng.uniform(90, 230, (2, 3))
    for i, y in enumerate(range(0, size, side)):
        for j, x in enumerate(range(0, size, side)):
            colour = glazes[(i + j) % 2] * rng.uniform(0.92, 1.05)
            cv2.rectangle(image, (x + grout, y + grout), (x + side - 1, y + side - 1), colour.tolist(), -1)
    return _finish(image, rng, noise=4.0)


def cobblestones(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Voronoi cells of a jittered grid: rounded stones, darker towards their edges, with dark joints."""
    spacing = int(rng.integers(28, 44))
    grid = np.mgrid[0 : size + spacing : spacing, 0 : size + spacing : spacing].reshape(2, -1).T
    seeds = grid + rng.uniform(-0.35, 0.35, grid.shape) * spacing
    ys, xs = np.mgrid[0:size, 0:size]
    distances, nearest = cKDTree(seeds).query(np.stack([xs.ravel(), ys.ravel()], 1), k=2)
    first, second = distances[:, 0].reshape(size, size), distances[:, 1].reshape(size, size)
    stone = rng.uniform(90, 170, (len(seeds), 1)) * rng.uniform(EARTH_LOW, EARTH_HIGH, (len(seeds), 3))
    image = stone[nearest[:, 0]].reshape(size, size, 3)
    image *= (1.0 - 0.4 * (first / spacing))[..., None]  # domed: darker towards the joint
    image[(second - first) < 3.0] = (35, 35, 35)
    return _finish(image, rng)


def foliage(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Leafy canopy: fractal noise (blurred noise at four scales) mapped onto dark-to-light greens, under
    scattered leaves lit by the same noise, so light patches hold bright leaves as in a real tree."""
    field = sum(
        gaussian_filter(rng.normal(0, 1, (size, size)), sigma) * sigma**0.5 for sigma in (2, 5, 12, 30)
    )
    field = (field - field.min()) / (np.ptp(field) + 1e-9)
    dark, light = np.array([15, 45, 20]), np.array([90, 200, 150])
    image = (dark + field[..., None] * (light - dark)).astype(np.float32)
    for _ in range(size * size // 150):
        x, y = (int(v) for v in rng.integers(0, size, 2))
        colour = (dark + (field[y, x] * rng.uniform(0.7, 1.3)) * (light - dark)).clip(0, 255)
        axes = (int(rng.integers(4, 10)), int(rng.integers(2, 5)))
        cv2.ellipse(image, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour.tolist(), -1, cv2.LINE_AA)
    return _finish(image, rng)


TEXTURES: dict[str, Painter] = {
    "gravel": gravel,
    "grass": grass,
    "bricks": bricks,
    "tiles": tiles,
    "cobblestones": cobblestones,
    "foliage": foliage,
}


def synthetic_textures(variants: int = 2, size: int = SIZE) -> dict[str, np.ndarray]:
    """Every texture in `variants` versions, named like `gravel-1`; identical on every run."""
    return {
        f"{name}-{variant + 1}": paint(np.random.default_rng([TEXTURE_SEED, index, variant]), size)
        for index, (name, paint) in enumerate(TEXTURES.items())
        for variant in range(variants)
    }
