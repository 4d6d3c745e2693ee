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
MAX_LIT_SHARE = 0.01
"""A camera's paint is reused (see `unpaint`) while at most this share of its pixels is lit in the new frame:
the black component first found takes in the odd dark scene pixel touching the paint, which people walking
by light again; a redrawn region lights far more (a triangle cut from half to a third of the box's sides:
more than half of it)."""
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


FillPlan = tuple[np.ndarray, np.ndarray]
"""Flat pixel indices (destination, source) into a crop: each painted pixel and the scene pixel filling it."""
NO_FILL: FillPlan = (np.zeros(0, np.intp), np.zeros(0, np.intp))


@dataclass(frozen=True)
class Unpainted:
    """A painted frame as the model should see it: `pixels` (the frame inside `box` = (x0, y0, x1, y1), its
    paint filled with the scene), `painted`, the paint's pixels inside the box, and `fill`, where each
    painted pixel's fill came from (kept for the camera's next frame, see `unpaint`)."""

    box: tuple[int, int, int, int]
    painted: np.ndarray
    pixels: np.ndarray
    fill: FillPlan = NO_FILL

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


def fill_plan(painted: np.ndarray) -> FillPlan:
    """Where each painted pixel is filled from: the scene shifted by each of SHIFTS in turn, the first shift
    whose source is not paint (so the order of the fills does not matter); a pixel no shift reaches stays
    black. The scene gives the model the context it counts with; what lands on the paint is not counted."""
    height, width = painted.shape
    flat_painted = painted.ravel()
    todo = np.flatnonzero(painted)
    destinations, sources = [NO_FILL[0]], [NO_FILL[1]]
    for share_y, share_x in SHIFTS:
        if not len(todo):
            break
        ys, xs = np.divmod(todo, width)
        source = ((ys - round(height * share_y)) % height) * width + (xs - round(width * share_x)) % width
        take = ~flat_painted[source]
        destinations.append(todo[take])
        sources.append(source[take])
        todo = todo[~take]
    return np.concatenate(destinations), np.concatenate(sources)


def fill_from_scene(crop: np.ndarray, plan: FillPlan) -> np.ndarray:
    """The crop with its painted pixels filled as `plan` (fill_plan) says."""
    pixels = as_bgr(crop)
    out = pixels.copy()
    destination, source = plan
    out.reshape(-1, 3)[destination] = pixels.reshape(-1, 3)[source]
    return out


def still_painted(scene: np.ndarray, painted: np.ndarray) -> bool:
    """Whether there is paint in `painted` and it is still unlit in `scene` (a crop's `lit` mask of the same
    shape), but for at most MAX_LIT_SHARE of its pixels."""
    if scene.shape != painted.shape:
        return False
    mask = painted.view(np.uint8)
    paint = cv2.countNonZero(mask)
    return paint > 0 and cv2.countNonZero(cv2.bitwise_and(scene, mask)) <= MAX_LIT_SHARE * paint


def unpaint(frame: np.ndarray, previous: Unpainted | None = None) -> Unpainted | None:
    """How the model should see a painted frame; None when it is not painted (most frames).

    `previous`, the same camera's last view, saves looking for paint inside the box (connected components)
    and working out where each painted pixel's fill comes from — most of unpaint's time — while the paint
    stays put: the same box, paint inside it then, and that paint still black (MAX_LIT_SHARE). A fixed
    camera's mask never moves; when it does, or the scene lights more of the old paint, the paint is looked
    for again (and in every frame of a box without paint inside, so paint added there is found)."""
    scene = lit(frame)
    box = content_box(scene)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    crop, inside = frame[y0:y1, x0:x1], scene[y0:y1, x0:x1]
    if previous is not None and previous.box == box and still_painted(inside, previous.painted):
        painted, plan = previous.painted, previous.fill
    else:
        painted = paint_inside(crop, inside)
        plan = fill_plan(painted)
    return Unpainted(box, painted, fill_from_scene(crop, plan) if len(plan[0]) else crop, plan)
