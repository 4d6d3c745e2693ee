"""Frames painted black at the edges — a privacy mask, the outside of a counting region, letterbox bars — and
how they are counted: inside the paint's bounding box, with the paint filled by shifted copies of the scene
while the model looks, and nothing counted where the paint was.

The model reads the people beside a large flat region at about half, at the same scale: on 30 synthetic
elevated views (`crowdstream check cameras`, `elevated_masked`) the shipped FP32 model's density inside the
counting region fell from 370 to 168 people (432 there) when the outside was painted black, and to 162 when
painted grey — a context effect (its receptive field spans most of an input). Cutting the paint off at its
bounding box brought 168 back to 235; filling what paint is left inside the box with the scene brought 359.

>>> frame = np.full((100, 200, 3), 90, np.uint8)
>>> frame[:, :40] = 0
>>> view = unpaint(frame)
>>> view.box, int(view.painted.sum()), int(view.pixels.min())
((40, 0, 200, 100), 0, 90)
>>> unpaint(np.full((100, 200, 3), 90, np.uint8)) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from crowdstream.engines.preprocess import as_bgr

BLACK_LEVEL = 16
"""Brightest channel value at or under which a pixel counts as painted: black paint comes back from a video
encoder as 0–10."""
MIN_PAINTED_SHARE = 0.05
"""Paint covering less of the frame than this is left alone (a thin border changes nothing)."""
MIN_PATCH_SHARE = 0.02
PAINT_MEAN = 4.0
"""Inside the box a black patch is paint when it touches the box's edge, covers MIN_PATCH_SHARE of it and
is flat black (mean brightest channel at most PAINT_MEAN; paint is 0 away from its JPEG-rung edge): a row of
dark caps at the edge of a crowd photograph (values up to 16, 0.6 % of it) is not."""
SHIFTS = (
    (0, 1 / 2),
    (1 / 2, 0),
    (1 / 2, 1 / 2),
    (0, 1 / 3),
    (1 / 3, 0),
    (1 / 3, 1 / 3),
    (0, 2 / 3),
    (2 / 3, 0),
)
"""Where the fill is copied from, as shares of the box's height and width (wrapping round)."""


@dataclass(frozen=True)
class Unpainted:
    """A painted frame as the model should see it: `pixels` (the frame inside `box` = (x0, y0, x1, y1), its
    paint filled with the scene) and `painted`, the paint's pixels inside the box."""

    box: tuple[int, int, int, int]
    painted: np.ndarray
    pixels: np.ndarray

    def keep(self, shape: tuple[int, int]) -> np.ndarray:
        """The share of each cell of a `shape` density map over the box that is not paint (0..1)."""
        scene = (~self.painted).astype(np.float32)
        return cv2.resize(scene, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def lit(frame: np.ndarray) -> np.ndarray:
    """uint8 mask, non-zero where some channel is above BLACK_LEVEL."""
    _, above = cv2.threshold(as_bgr(frame), BLACK_LEVEL, 255, cv2.THRESH_BINARY)
    return cv2.cvtColor(above, cv2.COLOR_BGR2GRAY)


def content_box(scene: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around everything not painted (`scene`: the frame's `lit` mask), when the paint at
    the edges covers at least MIN_PAINTED_SHARE of the frame; else None (an all-black frame too)."""
    x, y, w, h = cv2.boundingRect(scene)
    height, width = scene.shape
    if w == 0 or h == 0 or w * h > (1 - MIN_PAINTED_SHARE) * height * width:
        return None
    return x, y, x + w, y + h


def paint_inside(crop: np.ndarray, scene: np.ndarray) -> np.ndarray:
    """Bool mask of the paint left inside a content box (`crop`, and `scene`, its `lit` mask): the corners
    of a counting region that is not a rectangle, black patches at the box's edge, large and flat
    (MIN_PATCH_SHARE, PAINT_MEAN). OpenCV throughout: a privacy-masked camera pays this on every frame."""
    black = cv2.compare(scene, 0, cv2.CMP_EQ)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(black, connectivity=4)
    height, width = black.shape
    edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist())
    large = [
        i
        for i in range(1, count)
        if i in edge and stats[i, cv2.CC_STAT_AREA] >= MIN_PATCH_SHARE * height * width
    ]
    painted = np.zeros((height, width), bool)
    if not large:
        return painted
    blue, green, red = cv2.split(as_bgr(crop))
    brightest = cv2.max(cv2.max(blue, green), red)
    for index in large:
        x, y, w, h = stats[index, :4]
        window = (slice(y, y + h), slice(x, x + w))  # the patch's bounding box: masks stay patch-sized
        patch = labels[window] == index
        if cv2.mean(brightest[window], mask=patch.view(np.uint8))[0] <= PAINT_MEAN:
            painted[window] |= patch
    return painted


def fill_from_scene(crop: np.ndarray, painted: np.ndarray) -> np.ndarray:
    """The crop with its painted pixels replaced by the scene shifted by each of SHIFTS in turn (the scene
    gives the model the context it counts with; what lands on the paint is not counted). Only the painted
    pixels are looked up (a shift's source is never paint, so the order of the fills does not matter)."""
    pixels = as_bgr(crop)
    out = pixels.copy()
    height, width = painted.shape
    flat_pixels, flat_out, flat_painted = pixels.reshape(-1, 3), out.reshape(-1, 3), painted.ravel()
    todo = np.flatnonzero(painted)
    for share_y, share_x in SHIFTS:
        if not len(todo):
            break
        ys, xs = np.divmod(todo, width)
        source = ((ys - round(height * share_y)) % height) * width + (xs - round(width * share_x)) % width
        take = ~flat_painted[source]
        flat_out[todo[take]] = flat_pixels[source[take]]
        todo = todo[~take]
    return out


def unpaint(frame: np.ndarray) -> Unpainted | None:
    """How the model should see a painted frame; None when it is not painted (most frames)."""
    scene = lit(frame)
    box = content_box(scene)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    crop = frame[y0:y1, x0:x1]
    painted = paint_inside(crop, scene[y0:y1, x0:x1])
    return Unpainted(box, painted, fill_from_scene(crop, painted) if painted.any() else crop)
