"""People-free training tiles: head-free regions of the training images, and synthetic textures.

An empty textured background (gravel, grass, brick, paving, foliage) must count close to zero, so training
shows the model such areas with a zero target. Head-free crops of the training photos are the realistic
source (roads, walls, sky of the same cameras); the procedural textures add the repetitive blob- and
stroke-like patterns that a density model confuses with distant heads. Sample images that ship inside
third-party packages are never used here: they are kept for independent checks.
"""

from __future__ import annotations

import cv2
import numpy as np

from engines.spec import INPUT_SIZE
from training.tile_render import TilePlan

TEXTURE_SIDE = 448
GREY_SHARE = 0.4


def head_free_box(
    points: np.ndarray,
    height: int,
    width: int,
    crop_h: int,
    crop_w: int,
    rng: np.random.Generator,
    tries: int = 24,
) -> tuple[int, int, int, int] | None:
    """A random (y0, x0, h, w) box with no annotated head inside it or within a margin of it (a head just
    outside still shows its hair), shrinking the box on failures; None when the image has no such area."""
    for attempt in range(tries):
        shrink = 0.85 ** (attempt // 4)
        ch, cw = max(16, int(crop_h * shrink)), max(16, int(crop_w * shrink))
        ch, cw = min(ch, height), min(cw, width)
        y0, x0 = int(rng.integers(0, height - ch + 1)), int(rng.integers(0, width - cw + 1))
        margin = 4 + 0.08 * min(ch, cw)
        near = (
            (points[:, 0] >= x0 - margin)
            & (points[:, 0] < x0 + cw + margin)
            & (points[:, 1] >= y0 - margin)
            & (points[:, 1] < y0 + ch + margin)
        )
        if not near.any():
            return y0, x0, ch, cw
    return None


def _fractal_noise(rng: np.random.Generator, side: int, octaves: int = 5) -> np.ndarray:
    """Sum of upsampled white noise at doubling frequencies, scaled to 0..1."""
    total = np.zeros((side, side), np.float32)
    for octave in range(octaves):
        cells = 4 * 2**octave
        layer = rng.random((cells, cells), dtype=np.float32)
        total += cv2.resize(layer, (side, side), interpolation=cv2.INTER_CUBIC) / 2**octave
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def _colour(rng: np.random.Generator, base: tuple[int, int, int], spread: float) -> tuple[int, ...]:
    """`base` (BGR) varied mostly in brightness, a little in hue: natural materials are not confetti."""
    shade = rng.normal(0, spread)
    return tuple(int(np.clip(c + shade + rng.normal(0, spread / 4), 0, 255)) for c in base)


def gravel(rng: np.random.Generator, side: int = TEXTURE_SIDE) -> np.ndarray:
    """Packed stones, lit from one side: blobs the size of distant heads, often with no ground between."""
    base = _colour(rng, (120, 125, 130), 30)
    image = np.full((side, side, 3), base, np.uint8)
    largest = int(rng.integers(5, 16))
    for _ in range(int(rng.integers(2, 6) * (side / largest) ** 2)):
        centre = rng.uniform(0, side, size=2)
        radius = rng.uniform(largest / 3, largest)
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(4, 8))))
        corners = centre + radius * rng.uniform(0.6, 1.0, size=(len(angles), 1)) * np.stack(
            [np.cos(angles), np.sin(angles)], axis=1
        )
        stone = _colour(rng, base, 35)
        cv2.fillPoly(image, [corners.astype(np.int32)], stone, cv2.LINE_AA)
        lit = centre + (corners - centre) * 0.5 - radius * 0.2
        cv2.fillPoly(image, [lit.astype(np.int32)], tuple(min(255, c + 30) for c in stone), cv2.LINE_AA)
    return cv2.GaussianBlur(image, (0, 0), 0.7)


def grass(rng: np.random.Generator, side: int = TEXTURE_SIDE) -> np.ndarray:
    """Blades of grass: thin strokes, mostly upright or all ways (a mown lawn seen from above), light blades
    over dark gaps."""
    base = _colour(rng, (40, 110, 60), 20)
    image = np.full((side, side, 3), base, np.uint8)
    upright = rng.random() < 0.5
    for _ in range(int(rng.integers(4000, 12000) * (side / TEXTURE_SIDE) ** 2)):
        x, y = float(rng.uniform(0, side)), float(rng.uniform(0, side))
        length = rng.uniform(6, 40)
        angle = rng.normal(-np.pi / 2, 0.4) if upright else rng.uniform(0, np.pi)
        end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
        width = int(rng.integers(1, 4))
        cv2.line(image, (int(x), int(y)), end, _colour(rng, (60, 150, 100), 45), width, cv2.LINE_AA)
    return cv2.GaussianBlur(image, (0, 0), 0.6)


def brick(rng: np.random.Generator, side: int = TEXTURE_SIDE) -> np.ndarray:
    """A brick wall: staggered rows of slightly varied bricks and mortar joints."""
    mortar = _colour(rng, (170, 175, 180), 20)
    image = np.full((side, side, 3), mortar, np.uint8)
    brick_h, brick_w = int(rng.integers(8, 30)), 0
    brick_w = int(brick_h * rng.uniform(2.0, 3.5))
    joint = max(1, brick_h // 8)
    base = _colour(rng, (60, 80, 150), 30)
    for row, y in enumerate(range(0, side, brick_h)):
        offset = (brick_w // 2) * (row % 2)
        for x in range(-offset, side, brick_w):
            colour = _colour(rng, base, 18)
            cv2.rectangle(
                image, (x + joint, y + joint), (x + brick_w - joint, y + brick_h - joint), colour, -1
            )
    noise = (_fractal_noise(rng, side) - 0.5) * 40
    return np.clip(image + noise[..., None], 0, 255).astype(np.uint8)


def paving(rng: np.random.Generator, side: int = TEXTURE_SIDE) -> np.ndarray:
    """Square or round paving stones (cobbles) with dark joints."""
    joint = _colour(rng, (70, 70, 70), 20)
    image = np.full((side, side, 3), joint, np.uint8)
    step = int(rng.integers(10, 48))
    round_stones = rng.random() < 0.5
    base = _colour(rng, (140, 140, 140), 30)
    for y in range(0, side + step, step):
        for x in range(0, side + step, step):
            colour = _colour(rng, base, 15)
            if round_stones:
                jitter = rng.integers(-step // 6, step // 6 + 1, size=2)
                cv2.circle(
                    image, (x + int(jitter[0]), y + int(jitter[1])), int(step * 0.45), colour, -1, cv2.LINE_AA
                )
            else:
                cv2.rectangle(image, (x + 1, y + 1), (x + step - 2, y + step - 2), colour, -1)
    return image


def foliage(rng: np.random.Generator, side: int = TEXTURE_SIDE) -> np.ndarray:
    """Leaves and shadows: fractal noise through a green-brown palette."""
    noise = _fractal_noise(rng, side, octaves=6)
    dark, light = np.array(_colour(rng, (20, 60, 30), 15)), np.array(_colour(rng, (80, 170, 120), 25))
    return (dark + noise[..., None] * (light - dark)).astype(np.uint8)


GENERATORS = (gravel, grass, brick, paving, foliage)


def perspective(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """View the texture as a ground plane receding from the camera (far side compressed)."""
    side = image.shape[0]
    squeeze = rng.uniform(0.0, 0.35) * side
    source = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    target = np.float32([[squeeze, 0], [side - squeeze, 0], [side, side], [0, side]])
    matrix = cv2.getPerspectiveTransform(source, target)
    return cv2.warpPerspective(image, matrix, (side, side), borderMode=cv2.BORDER_REFLECT)


class TextureBank:
    """A fixed set of synthetic textures made once, drawn as random crops (rendered with the training images)."""

    def __init__(self, seed: int, size: int = 80):
        rng = np.random.default_rng((seed, 7))
        self.textures = []
        for index in range(size):
            image = GENERATORS[index % len(GENERATORS)](rng)
            if rng.random() < 0.5:
                image = perspective(rng, image)
            self.textures.append(image)

    def plan(self, rng: np.random.Generator, first_source: int) -> TilePlan:
        """A random square crop of a random texture (textures are sources `first_source` onwards), rotated
        by a multiple of 90° and often grey: part A's greyscale photos are dense crowds, so grey texture must
        not read as one."""
        texture = int(rng.integers(len(self.textures)))
        side = int(rng.integers(INPUT_SIZE // 2, TEXTURE_SIDE + 1))
        y0, x0 = (int(v) for v in rng.integers(0, TEXTURE_SIDE - side + 1, size=2))
        grey = bool(rng.random() < GREY_SHARE)
        return TilePlan(first_source + texture, (y0, x0, side, side), turns=int(rng.integers(4)), grey=grey)
