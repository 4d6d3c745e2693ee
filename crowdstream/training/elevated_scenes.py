"""Synthetic elevated camera views with exact head points: people cut from sparse annotated images, pasted
onto people-free backgrounds at perspective-consistent sizes, far to near.

ShanghaiTech lacks the view most operators have: a fixed camera above a concourse or a square, sparse to
medium crowds, whole bodies visible under 5–20 px heads. Each person is cut from a part B image (whose
cameras look down on streets) as a soft head-and-body silhouette around its annotated head, scaled so its
head matches the scene's perspective (small near the horizon, larger near the lens) and pasted, so the
head point of every pasted person is known exactly. Backgrounds are people-free: a perspective floor of
tiles, chequers or stone under a wall band (indoor), or a head-free region of a training image (outdoor).

Built from training-split images for training and from hold-out images only for the checks
(`training.camera_checks`), with separate seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

from crowdstream.training.annotations import Sample
from crowdstream.training.negatives import fractal_noise, head_free_box

BODY_HEADS = 6.5
"""Silhouette height below the head centre, in head diameters (a standing adult is about 7.5 heads)."""
HALF_WIDTH_HEADS = 1.3
"""Silhouette half-width (shoulders), in head diameters."""


@dataclass(frozen=True)
class Cutout:
    """One person: BGR pixels, a soft alpha of the silhouette, the head centre inside them and the head
    diameter in the source image's pixels."""

    pixels: np.ndarray
    alpha: np.ndarray
    head: tuple[float, float]
    head_size: float


def head_sizes(points: np.ndarray) -> np.ndarray:
    """Each head's diameter estimate: 0.6 × the mean distance to its three nearest neighbours, clipped to
    8–60 px (ShanghaiTech's geometry-adaptive rule, β 0.3 per side)."""
    if len(points) < 4:
        return np.full(len(points), 20.0)
    distances, _ = cKDTree(points).query(points, k=4)
    return np.clip(0.6 * distances[:, 1:].mean(axis=1), 8.0, 60.0)


def silhouette(height: int, width: int, head: tuple[float, float], size: float) -> np.ndarray:
    """A soft alpha (0..1) of a head disc over a tapering body, blurred at the edge."""
    alpha = np.zeros((height, width), np.float32)
    hx, hy = head
    cv2.circle(alpha, (round(hx), round(hy)), max(1, round(size * 0.55)), 1.0, -1, cv2.LINE_AA)
    shoulder = hy + 0.6 * size
    body = np.array(
        [
            [hx - HALF_WIDTH_HEADS * size, shoulder],
            [hx + HALF_WIDTH_HEADS * size, shoulder],
            [hx + 0.8 * size, hy + BODY_HEADS * size],
            [hx - 0.8 * size, hy + BODY_HEADS * size],
        ]
    )
    cv2.fillConvexPoly(alpha, np.round(body).astype(np.int32), 1.0, cv2.LINE_AA)
    return cv2.GaussianBlur(alpha, (0, 0), max(0.8, size * 0.12))


def cutouts(sample: Sample, image: np.ndarray, limit: int = 40) -> list[Cutout]:
    """Up to `limit` people of an image whose silhouette box lies inside it and holds no other head (so a
    pasted cutout brings exactly one head)."""
    points = sample.points
    sizes = head_sizes(points)
    height, width = image.shape[:2]
    found = []
    for (x, y), size in zip(points, sizes, strict=True):
        x0, x1 = int(x - HALF_WIDTH_HEADS * size - 2), int(x + HALF_WIDTH_HEADS * size + 3)
        y0, y1 = int(y - 0.8 * size), int(y + BODY_HEADS * size + 2)
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            continue
        inside = (points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1)
        if inside.sum() != 1:
            continue
        head = (float(x - x0), float(y - y0))
        alpha = silhouette(y1 - y0, x1 - x0, head, float(size))
        found.append(Cutout(image[y0:y1, x0:x1].copy(), alpha, head, float(size)))
        if len(found) >= limit:
            break
    return found


def floor_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """An indoor elevated view: a wall band over a floor of tiles, chequers or stone seen in perspective."""
    width, height = size
    side = 1024
    kind = rng.integers(3)
    tile = int(rng.integers(24, 96))
    yy, xx = np.mgrid[0:side, 0:side]
    if kind == 0:  # chequer
        pattern = ((yy // tile + xx // tile) % 2).astype(np.float32)
    elif kind == 1:  # tiles with grout
        pattern = ((yy % tile > 3) & (xx % tile > 3)).astype(np.float32)
    else:  # stone
        pattern = fractal_noise(rng, side, 5)
    light, dark = rng.uniform(120, 230, 3), rng.uniform(40, 160, 3)
    floor = dark + pattern[..., None] * (light - dark)
    floor = floor * (0.85 + 0.3 * fractal_noise(rng, side, 2)[..., None])
    horizon = int(height * rng.uniform(0.05, 0.35))
    spread = rng.uniform(0.15, 0.45) * width
    source = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    target = np.float32(
        [[spread, horizon], [width - spread, horizon], [width * 1.4, height], [-width * 0.4, height]]
    )
    warped = cv2.warpPerspective(floor.astype(np.float32), cv2.getPerspectiveTransform(source, target), size)
    wall = rng.uniform(60, 220, 3) * (0.8 + 0.4 * fractal_noise(rng, 256, 3)[..., None])
    out = warped.copy()
    out[:horizon] = cv2.resize(wall, (width, max(horizon, 1)))[:horizon]
    return np.clip(out, 0, 255).astype(np.uint8)


def outdoor_background(
    rng: np.random.Generator, size: tuple[int, int], images: list[tuple[Sample, np.ndarray]]
) -> np.ndarray | None:
    """A head-free region of an annotated image, stretched to the frame (outdoor ground, roads, plazas)."""
    sample, image = images[int(rng.integers(len(images)))]
    side = int(min(sample.height, sample.width) * rng.uniform(0.3, 0.6))
    box = head_free_box(sample.points, sample.height, sample.width, side, int(side * 4 / 3), rng)
    if box is None:
        return None
    y0, x0, ch, cw = box
    return cv2.resize(image[y0 : y0 + ch, x0 : x0 + cw], size, interpolation=cv2.INTER_LINEAR)


def paste(frame: np.ndarray, cutout: Cutout, head_at: tuple[float, float], head_size: float) -> bool:
    """Paste `cutout` scaled so its head is `head_size` px with its head centre at `head_at`; False when
    the head would fall outside the frame."""
    scale = head_size / cutout.head_size
    pixels = cv2.resize(cutout.pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(cutout.alpha, (pixels.shape[1], pixels.shape[0]), interpolation=cv2.INTER_AREA)
    x0 = round(head_at[0] - cutout.head[0] * scale)
    y0 = round(head_at[1] - cutout.head[1] * scale)
    height, width = frame.shape[:2]
    if not (0 <= head_at[0] < width and 0 <= head_at[1] < height):
        return False
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + pixels.shape[1], width), min(y0 + pixels.shape[0], height)
    if fx1 <= fx0 or fy1 <= fy0:
        return False
    a = alpha[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0, None]
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    blended = region * (1 - a) + pixels[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] * a
    frame[fy0:fy1, fx0:fx1] = blended.astype(np.uint8)
    return True


def elevated_scene(
    rng: np.random.Generator,
    people: list[Cutout],
    backgrounds: list[tuple[Sample, np.ndarray]],
    size: tuple[int, int] = (640, 480),
    crowd: tuple[int, int] = (4, 60),
    near_head: tuple[float, float] = (12.0, 26.0),
) -> tuple[np.ndarray, np.ndarray]:
    """(BGR frame, (N, 2) head points) of one synthetic view: heads grow linearly from about a third of
    `near_head` at the top of the walkable area to `near_head` at the bottom; people pasted far to near so
    nearer bodies cover farther ones (a covered head is still a person: its point stays)."""
    width, height = size
    frame = None
    if backgrounds and rng.random() < 0.5:
        frame = outdoor_background(rng, size, backgrounds)
    if frame is None:
        frame = floor_background(rng, size)
    top = height * rng.uniform(0.1, 0.4)
    near = rng.uniform(*near_head)
    far = near * rng.uniform(0.25, 0.5)
    count = int(rng.integers(crowd[0], crowd[1] + 1))
    ys = np.sort(rng.uniform(top, height * 1.02, count))
    heads = []
    for y in ys:
        size_here = far + (near - far) * (y - top) / (height - top)
        x = rng.uniform(0, width)
        if paste(frame, people[int(rng.integers(len(people)))], (x, y), size_here):
            heads.append((x, y))
    return frame, np.asarray(heads, np.float32).reshape(-1, 2)
