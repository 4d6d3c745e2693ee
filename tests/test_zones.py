"""Zones: polygon checks and counting from density maps at any scale, against hand-computed counts and,
on real ShanghaiTech annotations, against OpenCV's own point-in-polygon test."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from crowdstream.engines.preprocess import resize_density
from crowdstream.stream.zones import Zone, check_polygon, polygon_area, scanline_fill
from tests.data_paths import PART_B, needs_data

SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[0, 0], [10, 10], [10, 0], [0, 10]], "self-intersecting"),
        ([[0, 0], [5, 5], [10, 10]], "zero area"),
        ([[0, 0], [10, 0]], "3 to 256 points"),
        ([[0, 0], [10, 0], [-1, 10]], "non-negative"),
        ([[0, 0], [10, 0], [float("nan"), 10]], "finite"),
        ([[0, 0], [10, 0], [1e300, 10]], "at most 100000"),
        ([[0, 0, 0], [1, 0, 0], [1, 1, 0]], "[x, y]"),
    ],
)
def test_bad_polygons_are_refused_with_the_reason(points, message) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_polygon(points)


def star(points: int) -> list[list[float]]:
    """A simple star-shaped polygon of `points` points (alternating radii) around (500, 500)."""
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    radii = np.where(np.arange(points) % 2, 200.0, 400.0)
    return np.stack([500 + radii * np.cos(angles), 500 + radii * np.sin(angles)], axis=1).tolist()


@pytest.mark.parametrize(
    ("points", "crossing"),
    [
        ([[0, 0], [10, 0], [10, 10], [5, 0], [0, 10]], "edge 0 crosses edge 2"),  # a vertex on an edge
        ([[0, 0], [10, 0], [10, 10], [0, 10], [0, 5], [12, 5], [0, 5.5]], "edge 1 crosses edge 4"),
        ([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0], [5, 5]], "edge 0 crosses edge 3"),  # a repeated point
        ([*star(254), [500, 500], [1000, 500]], "crosses"),  # the closing edges cut through the star
    ],
)
def test_every_pair_of_edges_is_checked_and_the_first_crossing_named(points, crossing) -> None:
    with pytest.raises(ValueError, match=crossing):
        check_polygon(points)


def test_the_largest_polygon_is_checked_and_accepted() -> None:
    assert check_polygon(star(256)).shape == (256, 2)


def test_concave_polygon_is_accepted_and_its_mask_matches_its_area() -> None:
    arrow = [[0, 0], [40, 20], [0, 40], [10, 20]]  # triangle of 40·40/2 = 800 minus one of 40·10/2 = 200
    assert check_polygon(arrow).shape == (4, 2)
    assert polygon_area(np.asarray(arrow, dtype=float)) == 600
    assert scanline_fill(np.asarray(arrow, dtype=float), 40, 40).sum() == pytest.approx(600, rel=0.03)


@pytest.mark.parametrize(
    ("polygon", "frame", "map_shape", "people"),
    [
        ([[0, 0], [5.5, 0], [5.5, 4], [0, 4]], (8, 8), (8, 8), 5.5 * 4),  # half pixels at the edge
        ([[0, 0], [10, 0], [10, 8], [0, 8]], (16, 16), (4, 4), 10 * 8),  # quarter-scale map, half pixels
        ([[4, 0], [8, 4], [4, 8], [0, 4]], (8, 8), (8, 8), 8 * 8 / 2),  # a diamond: edges cut pixels
        # a skewed quadrilateral: shoelace by hand (2 - 7 + 49 - 12 + 36 - 14 + 2 - 6) / 2 = 25
        ([[1, 1], [7, 2], [6, 7], [2, 6]], (8, 8), (8, 8), 25),
    ],
)
def test_a_uniform_crowd_counts_as_the_zone_area(polygon, frame, map_shape, people) -> None:
    """One person per frame pixel spread evenly: a zone holds as many people as its area in pixels."""
    per_map_pixel = frame[0] * frame[1] / (map_shape[0] * map_shape[1])
    density = np.full(map_shape, per_map_pixel, dtype=np.float32)
    assert Zone("z", polygon).count(density, frame) == pytest.approx(people, abs=0.25)


def test_mask_coverage_is_fractional_at_a_coarse_scale() -> None:
    zone = Zone("left", [[0, 0], [6, 0], [6, 8], [0, 8]])
    mask = zone.mask((16, 8), (2, 4))  # map pixels are 4 frame pixels wide: the edge at x=6 halves one
    np.testing.assert_allclose(mask, [[1, 0.5, 0, 0], [1, 0.5, 0, 0]], atol=1e-6)


def test_area_turns_count_into_density_and_threshold_triggers() -> None:
    density = np.zeros((10, 10), dtype=np.float32)
    density[2:4, 2:4] = 1.0  # four people inside the square
    density[8, 8] = 5.0  # five outside
    zone = Zone("square", SQUARE[:1] + [[5, 0], [5, 5], [0, 5]], area_m2=2.0, threshold=1.5)
    reading = zone.reading(density, (10, 10))
    assert reading.count == pytest.approx(4.0)
    assert reading.density == pytest.approx(2.0)
    assert zone.trigger(density, (10, 10))
    assert not Zone("calm", SQUARE, area_m2=100.0, threshold=1.5).trigger(density, (10, 10))


@needs_data
@pytest.mark.parametrize("image", ["IMG_1.jpg", "IMG_10.jpg", "IMG_100.jpg"])
def test_zone_counts_follow_real_head_annotations_at_quarter_scale(image: str) -> None:
    from crowdstream.training.annotations import load_shanghaitech
    from crowdstream.training.density import density_map

    sample = load_shanghaitech(PART_B / "images" / image)
    full = density_map(sample.points, sample.height, sample.width)
    quarter = resize_density(full, sample.height // 4, sample.width // 4)
    polygon = [[0, 0], [sample.width * 0.6, 0], [sample.width * 0.4, sample.height], [0, sample.height]]
    zone = Zone("left", polygon)
    outline = np.asarray(polygon, dtype=np.float32)
    inside = sum(cv2.pointPolygonTest(outline, (float(x), float(y)), False) >= 0 for x, y in sample.points)
    frame_size = (sample.width, sample.height)
    assert zone.count(full, frame_size) == pytest.approx(inside, abs=max(2.0, 0.05 * inside))
    assert zone.count(quarter, frame_size) == pytest.approx(zone.count(full, frame_size), abs=1.5)
    assert zone.fits(*frame_size) and not zone.fits(sample.width // 2, sample.height)
