"""Frames painted black at the edges (privacy masks, the outside of a counting region, letterbox bars) are
counted inside their content box, the paint left inside it filled with the scene and not counted: the same
people give the same count with or without a rectangular paint, and nothing is counted on the paint."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdstream.engines.counting import count_frames
from crowdstream.engines.engine import load_engine
from crowdstream.engines.paint import content_box, fill_from_scene, fill_plan, lit, paint_inside, unpaint

REPLAY = Path(__file__).resolve().parents[1] / "crowdstream" / "training" / "replay" / "check"


@pytest.fixture(scope="module")
def engine():
    return load_engine("default", threads=1)


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """A real crowd photograph (a crop of a ShanghaiTech training image shipped with the package)."""
    path = sorted(REPLAY.glob("*.jpg"))[0]
    return cv2.imread(str(path))


def painted(picture: np.ndarray, top: int, left: int, size: tuple[int, int]) -> np.ndarray:
    frame = np.zeros((*size, 3), np.uint8)
    frame[top : top + picture.shape[0], left : left + picture.shape[1]] = picture
    return frame


def test_content_box_finds_the_picture_and_ignores_thin_or_absent_paint(picture: np.ndarray) -> None:
    h, w = picture.shape[:2]
    assert content_box(lit(painted(picture, 40, 90, (h + 100, w + 200)))) == (90, 40, 90 + w, 40 + h)
    assert content_box(lit(picture)) is None
    assert not paint_inside(picture, lit(picture)).any()  # its row of dark caps at the left edge is not paint
    assert content_box(lit(painted(picture, 1, 1, (h + 2, w + 2)))) is None  # a 1-px border: under 5 %
    assert content_box(lit(np.zeros((480, 640, 3), np.uint8))) is None  # all black: counted as it is
    dark = np.full((480, 640, 3), 30, np.uint8)  # a dark scene is not paint
    assert content_box(lit(dark)) is None


def test_a_painted_frame_counts_the_same_people_as_the_picture_alone(engine, picture: np.ndarray) -> None:
    h, w = picture.shape[:2]
    frame = painted(picture, 60, 100, (h + 160, w + 260))
    (alone,), (framed,) = count_frames(engine, [picture]), count_frames(engine, [frame])
    assert framed.count == pytest.approx(alone.count, rel=1e-5)
    assert framed.count > 1
    assert framed.density.shape == (round(frame.shape[0] * 0.25), round(frame.shape[1] * 0.25))
    assert framed.density[: round(60 * 0.25) - 1].sum() == 0  # nothing in the paint above the picture
    assert framed.density.sum() == pytest.approx(alone.density.sum(), rel=1e-4)
    mixed = count_frames(engine, [frame, picture])  # batched with an unpainted frame: the same answers
    assert [m.count for m in mixed] == pytest.approx([framed.count, alone.count], rel=1e-5)


def test_only_large_black_patches_at_the_box_edge_are_paint() -> None:
    crop = np.full((200, 300, 3), 120, np.uint8)
    crop[:60, :80] = 0  # a painted corner
    crop[100:110, 150:160] = 0  # black hair in the scene: not at the edge
    crop[195:, 290:] = 0  # a tiny dark patch at the edge: under the share
    painted = paint_inside(crop, lit(crop))
    assert painted[:60, :80].all() and painted.sum() == 60 * 80


def test_the_fill_copies_the_scene_onto_the_paint_and_leaves_the_scene_alone() -> None:
    rng = np.random.default_rng(0)
    crop = rng.integers(40, 255, (120, 160, 3), dtype=np.uint8)
    painted = np.zeros((120, 160), bool)
    painted[:50, :70] = True
    crop[painted] = 0
    filled = fill_from_scene(crop, fill_plan(painted))
    np.testing.assert_array_equal(filled[~painted], crop[~painted])
    assert (filled[painted].max(axis=1) >= 40).all()  # every painted pixel got a scene pixel


def test_nothing_is_counted_on_the_paint_of_a_counting_region(engine, picture: np.ndarray) -> None:
    h, w = picture.shape[:2]
    frame = painted(picture, 40, 60, (h + 80, w + 120))
    corner = np.array([[60, 40], [60 + w // 2, 40], [60, 40 + h // 2]], np.int32)
    cv2.fillConvexPoly(frame, corner, (0, 0, 0))  # a counting region that is not a rectangle
    view = unpaint(frame)
    assert view is not None and view.box == (60, 40, 60 + w, 40 + h) and view.painted.sum() > 0
    (counted,) = count_frames(engine, [frame])
    assert counted.count == pytest.approx(float(counted.density.sum()), rel=1e-4)
    cell = 4  # density maps are a quarter of the frame: the painted triangle's inner cells hold nothing
    inner = counted.density[
        (40 + 8) // cell : (40 + h // 4) // cell, (60 + 8) // cell : (60 + w // 4) // cell
    ]
    assert inner.size and inner.sum() == 0


def region_frame(picture: np.ndarray, corner_share: int = 2) -> np.ndarray:
    """`picture` on black with a triangle of paint in its top-left corner: a counting region that is not a
    rectangle, as a fixed camera's frames come painted."""
    h, w = picture.shape[:2]
    frame = painted(picture, 40, 60, (h + 80, w + 120))
    corner = np.array([[60, 40], [60 + w // corner_share, 40], [60, 40 + h // corner_share]], np.int32)
    cv2.fillConvexPoly(frame, corner, (0, 0, 0))
    return frame


def test_the_next_frame_of_a_camera_reuses_its_paint_and_counts_the_same(engine, picture: np.ndarray) -> None:
    """The camera's scene changes, its paint does not: the next frame reuses the last frame's paint and fill
    (the same arrays, not looked for again) and counts what a fresh look counts. A fresh look can differ at
    the paint's edge by the odd dark scene pixel that touches it (it joins the black component); the reused
    paint is the camera's mask as first found."""
    first = region_frame(picture)
    moved = region_frame(np.roll(picture, 17, axis=1))  # people moved, the paint stayed
    last = unpaint(first)
    fresh, reused = unpaint(moved), unpaint(moved, last)
    assert last is not None and fresh is not None and reused is not None and last.painted.any()
    assert reused.painted is last.painted and reused.fill is last.fill
    assert reused.box == fresh.box
    assert (reused.painted != fresh.painted).sum() < 0.005 * fresh.painted.sum()
    scene = ~(reused.painted | fresh.painted)
    np.testing.assert_array_equal(reused.pixels[scene], fresh.pixels[scene])
    assert not np.array_equal(reused.pixels, last.pixels)
    (looked,), (kept,) = count_frames(engine, [moved]), count_frames(engine, [moved], views=[reused])
    assert kept.count == pytest.approx(looked.count, rel=0.01) and kept.count > 1
    (whole,) = count_frames(engine, [moved], views=[None])  # views are used: none given, none applied
    assert whole.count < 0.95 * looked.count


def test_paint_that_moves_or_is_lit_is_looked_for_again(picture: np.ndarray) -> None:
    last = unpaint(region_frame(picture))
    smaller = region_frame(picture, corner_share=3)  # the region redrawn: the old paint partly lit now
    again = unpaint(smaller, last)
    assert again.painted is not last.painted
    np.testing.assert_array_equal(again.painted, unpaint(smaller).painted)
    h, w = picture.shape[:2]
    shifted = painted(picture, 30, 70, (h + 80, w + 120))  # another box
    assert unpaint(shifted, last).box == unpaint(shifted).box != last.box
