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

from crowdstream.engines.spec import INPUT_SIZE
from crowdstream.training.tile_render import TilePlan

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


def fractal_noise(rng: np.random.Generator, side: int, octaves: int = 5) -> np.ndarray:
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
    noise = (fractal_noise(rng, side) - 0.5) * 40
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
    noise = fractal_noise(rng, side, octaves=6)
    dark, light = np.array(_colour(rng, (20, 60, 30), 15)), np.array(_colour(rng, (80, 170, 120), 25))
    return (dark + noise[..., None] * (light - dark)).astype(np.uint8)


GENERATORS = (gravel, grass, brick, paving, foliage)
"""The families of the shipped model's training tiles (TextureBank draws them in this order)."""


def pebbles(rng: np.random.Generator, side: int = TEXTURE_SIDE) -> np.ndarray:
    """Rounded stones packed edge to edge at one size (3 to 40 px across), each shaded from a lit side to a
    dark one with a shadow under it: the blob pattern of a gravel photo, where a head counter sees a crowd."""
    size = float(np.exp(rng.uniform(np.log(3), np.log(40))))
    image = np.full((side, side, 3), _colour(rng, (45, 50, 55), 15), np.uint8)
    base = _colour(rng, (125, 130, 135), 35)
    light = rng.uniform(0, 2 * np.pi)
    shift = np.array([np.cos(light), np.sin(light)])
    for _ in range(int(2.2 * (side / size) ** 2)):
        centre = rng.uniform(-size, side + size, size=2)
        axes = np.maximum(1, size / 2 * rng.uniform(0.6, 1.1, size=2))
        angle = float(rng.uniform(0, 180))
        stone = _colour(rng, base, 40)
        shadow = tuple(int(c * 0.35) for c in stone)
        for offset, colour, shrink in ((0.25, shadow, 1.0), (0.0, stone, 1.0), (-0.2, None, 0.55)):
            colour = colour or tuple(min(255, c + 35) for c in stone)
            at = tuple(int(v) for v in centre + offset * size * shift)
            cv2.ellipse(
                image, at, tuple(int(a * shrink) for a in axes), angle, 0, 360, colour, -1, cv2.LINE_AA
            )
    return cv2.GaussianBlur(image, (0, 0), max(0.5, size / 12))


def sand(rng: np.random.Generator, side: int = TEXTURE_SIDE) -> np.ndarray:
    """Fine grains over soft ripples or dunes: noise at a grain size of 1 to 4 px, some darker and lighter
    specks, and a low-frequency shading."""
    grain = float(rng.uniform(1, 4))
    cells = max(8, int(side / grain))
    noise = cv2.resize(
        rng.random((cells, cells), dtype=np.float32), (side, side), interpolation=cv2.INTER_LINEAR
    )
    ys = np.arange(side, dtype=np.float32)[:, None]
    ripples = np.sin(ys / rng.uniform(6, 40) * 2 * np.pi + 3 * fractal_noise(rng, side, 3))
    shade = 0.55 * noise + 0.15 * ripples * (rng.random() < 0.6) + 0.5 * fractal_noise(rng, side, 4)
    dark, light = np.array(_colour(rng, (90, 140, 170), 25)), np.array(_colour(rng, (170, 205, 225), 20))
    image = dark + np.clip(shade, 0, 1.2)[..., None] / 1.2 * (light - dark)
    specks = rng.random((side, side)) < rng.uniform(0.002, 0.02)
    image[specks] *= rng.uniform(0.3, 1.6, size=(int(specks.sum()), 1))
    return np.clip(image, 0, 255).astype(np.uint8)


def leaf_litter(rng: np.random.Generator, side: int = TEXTURE_SIDE) -> np.ndarray:
    """Fallen leaves of one size (6 to 60 px), overlapping at all angles, in browns, yellows and dull greens,
    each with a darker midrib."""
    size = float(np.exp(rng.uniform(np.log(6), np.log(60))))
    image = np.full((side, side, 3), _colour(rng, (25, 40, 55), 10), np.uint8)
    palette = [(40, 90, 140), (30, 140, 190), (50, 110, 100), (35, 60, 110)]
    for _ in range(int(3 * (side / size) ** 2)):
        centre = tuple(int(v) for v in rng.uniform(-size, side + size, size=2))
        length, angle = size * rng.uniform(0.6, 1.2), float(rng.uniform(0, 360))
        colour = _colour(rng, palette[int(rng.integers(len(palette)))], 30)
        axes = (max(1, int(length / 2)), max(1, int(length * rng.uniform(0.15, 0.35))))
        cv2.ellipse(image, centre, axes, angle, 0, 360, colour, -1, cv2.LINE_AA)
        rad = np.deg2rad(angle)
        tip = (int(centre[0] + axes[0] * np.cos(rad)), int(centre[1] + axes[0] * np.sin(rad)))
        tail = (int(centre[0] - axes[0] * np.cos(rad)), int(centre[1] - axes[0] * np.sin(rad)))
        cv2.line(image, tail, tip, tuple(int(c * 0.6) for c in colour), 1, cv2.LINE_AA)
    return cv2.GaussianBlur(image, (0, 0), 0.6)


def dense_grass(rng: np.random.Generator, side: int = TEXTURE_SIDE) -> np.ndarray:
    """A close-up of a lawn: blades 1 to 6 px wide and 10 to 40 widths long, so dense that the ground shows
    only as dark gaps, lit blades over shadowed ones."""
    width = float(np.exp(rng.uniform(0, np.log(6))))
    image = np.full((side, side, 3), _colour(rng, (20, 45, 25), 10), np.uint8)
    upright = rng.random() < 0.6
    blade_base = _colour(rng, (60, 150, 100), 30)
    blades = int(rng.uniform(1.5, 3.0) * side**2 / (width * width * 20))
    for index in range(blades):
        x, y = rng.uniform(0, side, size=2)
        length = width * rng.uniform(10, 40)
        angle = rng.normal(-np.pi / 2, 0.35) if upright else rng.uniform(0, np.pi)
        end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
        depth = 0.5 + 0.8 * index / blades  # later blades lie on top and catch more light
        colour = tuple(int(min(255, c * depth)) for c in _colour(rng, blade_base, 35))
        cv2.line(image, (int(x), int(y)), end, colour, max(1, int(round(width))), cv2.LINE_AA)
    return cv2.GaussianBlur(image, (0, 0), 0.5)


def carpet(rng: np.random.Generator, side: int = TEXTURE_SIDE) -> np.ndarray:
    """Loop pile or a woven floor: a jittered grid of small loops (2 to 10 px) with a fractal colour
    variation and an occasional pattern of bands."""
    step = int(rng.integers(2, 11))
    base = np.clip(np.array(_colour(rng, (110, 100, 120), 50), np.float32), 40, 255)  # never a black carpet
    image = np.empty((side, side, 3), np.float32)
    image[:] = base * 0.55
    ys, xs = np.mgrid[0:side:step, 0:side:step]
    jitter = rng.normal(0, step / 5, size=(2, *ys.shape))
    shades = rng.uniform(0.8, 1.25, size=ys.shape)
    for y, x, shade in zip((ys + jitter[0]).ravel(), (xs + jitter[1]).ravel(), shades.ravel(), strict=True):
        cv2.circle(image, (int(x), int(y)), max(1, step // 2), tuple(float(c) * shade for c in base), -1)
    bands = 1 + 0.15 * np.sin(np.arange(side) / rng.uniform(20, 120) * 2 * np.pi) * (rng.random() < 0.4)
    image *= (0.8 + 0.4 * fractal_noise(rng, side, 4))[..., None] * bands[None, :, None]
    return np.clip(cv2.GaussianBlur(image, (0, 0), 0.6), 0, 255).astype(np.uint8)


MORE_GENERATORS = (pebbles, sand, leaf_litter, dense_grass, carpet)
"""Families added for the people-free fine-tune (bench/negatives_finetune.py): ground covers at many scales."""


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
