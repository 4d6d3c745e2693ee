"""Overlay annotators: heatmap blending, zone outlines in alert colours, counts. Annotators draw on the
scene they are given (supervision's convention); `render_overlay` draws on one copy and leaves the frame
untouched, at any scale."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from crowdstream.engines.labels import Rect, draw_label, draw_text, label_box, place_labels, text_size
from crowdstream.stream.overlay import (
    ALERT_COLOR,
    COUNT_BACKGROUND,
    OK_COLOR,
    HeatmapAnnotator,
    ZoneAnnotator,
    blend_heatmap,
    people,
    render_overlay,
    zone_label,
)
from crowdstream.stream.readings import CameraReading
from crowdstream.stream.zones import Zone, ZoneReading
from tests.data_paths import PART_B, needs_data


def grey_scene(height: int = 120, width: int = 160) -> np.ndarray:
    return np.full((height, width, 3), 100, dtype=np.uint8)


def marker_centre(scene: np.ndarray, near: tuple[int, int], reach: int = 15) -> tuple[float, float]:
    """Where the densest-spot marker's white cross is centred, looking within `reach` pixels of `near`
    (x, y); fails if there is no white there at all."""
    x0, y0 = near[0] - reach, near[1] - reach
    window = scene[max(0, y0) : near[1] + reach + 1, max(0, x0) : near[0] + reach + 1]
    ys, xs = np.nonzero((window > 200).all(axis=2))
    assert xs.size, f"no marker near {near}"
    return float(xs.mean() + max(0, x0)), float(ys.mean() + max(0, y0))


def test_empty_density_leaves_the_scene_clear() -> None:
    scene = grey_scene()
    out = blend_heatmap(scene, np.zeros((30, 40), np.float32))
    assert out is scene and (out == 100).all()


def test_dense_spot_is_coloured_hot_and_far_areas_stay_clear() -> None:
    density = np.zeros((30, 40), np.float32)
    density[5, 5] = 1.0  # a quarter-scale map: the spot lands near frame pixel (22, 22)
    out = HeatmapAnnotator(opacity=0.8).annotate(grey_scene(), density)
    blue, green, red = out[22, 22].astype(int)
    assert red > 110 and red > blue + 50 and red > green + 50  # the hot end of the JET colour map
    assert (out[100:, 120:] == 100).all()


def test_overlay_on_a_scaled_frame_puts_zones_and_marker_where_they_belong() -> None:
    """Drawn on a half-size copy, a zone at frame x=200 is outlined at x=100 and the densest-point marker
    at half its frame coordinates; the input frame is left as it was."""
    zone = Zone("door", [[200, 120], [300, 120], [300, 220], [200, 220]])
    reading = CameraReading(
        "gate", 0.0, 5.0, 5.0, (ZoneReading("door", 5.0),), densest=(120, 60), frame_size=(320, 240)
    )
    half = grey_scene(120, 160)
    out = render_overlay(half, None, reading, [zone])
    assert (half == 100).all()  # a copy was drawn on
    assert tuple(out[85, 150]) == OK_COLOR and tuple(out[85, 130]) == (100, 100, 100)  # right edge x=150
    assert marker_centre(out, (60, 30)) == pytest.approx((60, 30), abs=1)  # half the frame's (120, 60)


def test_zone_outline_turns_alert_colour_over_threshold() -> None:
    zone = Zone("door", [[40, 60], [120, 60], [120, 110], [40, 110]])
    calm = ZoneReading("door", 3.0, threshold=5.0)
    crowded = ZoneReading("door", 9.0, threshold=5.0)
    annotator = ZoneAnnotator(thickness=3)
    edge = (85, 110)  # bottom edge, far from the label at the top-left corner
    assert tuple(annotator.annotate(grey_scene(), [zone], [calm])[edge[1], edge[0]]) == OK_COLOR
    assert tuple(annotator.annotate(grey_scene(), [zone], [crowded])[edge[1], edge[0]]) == ALERT_COLOR


def test_count_label_is_drawn_in_the_corner_and_the_marker_on_the_densest_spot() -> None:
    """The count (not the smoothed one) reads "12 people" on its box in the top-left corner, pixel for
    pixel as the label drawer draws it there, and the marker's cross is centred on the densest spot."""
    reading = CameraReading("gate", 0.0, 12.0, 11.0, densest=(300, 200), frame_size=(480, 360))
    out = render_overlay(grey_scene(360, 480), None, reading)
    size, margin = 0.8, 5  # label_scale of a 360-pixel-high frame, and its margin
    width, height = label_box("12 people", size)
    expected = grey_scene(360, 480)
    draw_label(expected, "12 people", Rect(margin, margin, width, height), size, COUNT_BACKGROUND)
    box = (slice(0, margin + height + 2), slice(0, margin + width + 2))
    assert np.array_equal(out[box], expected[box])
    assert marker_centre(out, (300, 200)) == pytest.approx((300, 200), abs=1)


def test_units_in_the_labels() -> None:
    assert [people(0.4), people(1.2), people(63.6)] == ["0 people", "1 person", "64 people"]
    assert zone_label(ZoneReading("left-half", 63.6, 0.5312, 1.5)) == "left-half: 64 people · 0.53 /m²"
    assert zone_label(ZoneReading("gate", 78.0, None, 20.0)) == "gate: 78 people"


def test_the_squared_and_the_dot_are_drawn_not_question_marks() -> None:
    """OpenCV's fonts have neither "²" nor "·"; drawn as ASCII they would come out as "?"."""
    scale, width, height = 1.0, 200, 60

    def drawn(text: str) -> np.ndarray:
        scene = np.zeros((height, width, 3), np.uint8)
        draw_text(scene, text, (4, 4), scale, (255, 255, 255))
        return scene[..., 0] > 0

    squared, plain = drawn("m²"), drawn("m")
    extra = squared & ~plain  # what "²" added
    rows = np.nonzero(extra.any(axis=1))[0]
    _, line = text_size("m", scale)
    assert rows.size and rows.max() < 4 + line * 0.6  # raised: in the upper part of the line
    assert not (drawn("m?") == squared).all()
    dot = drawn("·")
    rows, columns = np.nonzero(dot)
    assert 0 < rows.size < 40 and np.ptp(columns) < 8  # a small dot...
    assert 4 + line * 0.2 < rows.mean() < 4 + line * 0.8  # ...at mid-height
    assert not (drawn("?") == dot).all()


def test_labels_take_the_first_free_place_and_never_overlap() -> None:
    count = Rect(0, 0, 50, 20)
    sizes = [(40, 10), (40, 10), (40, 10)]
    wanted = [(0, 0), (30, 12), (0, 25)]
    corners = [[wanted[0], (60, 0)], [wanted[1], (60, 0), (0, 40)], [wanted[2], (-5, 0)]]
    boxes = place_labels(sizes, corners, (100, 60), [count])
    assert boxes == [Rect(60, 0, 40, 10), Rect(0, 40, 40, 10), Rect(0, 25, 40, 10)]
    assert place_labels([(40, 10)], [[(0, 0), (70, 0)]], (100, 60), [count]) == [None]  # no room: left out


def test_a_zone_at_the_origin_never_hides_the_count_nor_another_label() -> None:
    """Zones starting at (0, 0) (the issue's hidden label) and zones stacked on each other: every
    label lands clear of the count and of the others, and the count label looks as it does alone."""
    width, height = 640, 360
    reading_zones = tuple(ZoneReading(f"zone {i}", 10.0 + i, 0.5, 1.0) for i in range(4))
    zones = [Zone(f"zone {i}", [[0, 0], [320 + 40 * i, 0], [320 + 40 * i, 200], [0, 200]]) for i in range(4)]
    reading = CameraReading("gate", 0.0, 25.0, 25.0, reading_zones, frame_size=(width, height))
    alone = render_overlay(
        grey_scene(height, width), None, CameraReading("gate", 0.0, 25.0, 25.0, frame_size=(width, height))
    )
    out = render_overlay(grey_scene(height, width), None, reading, zones)
    size, margin = 0.8, 5  # label_scale of a 360-pixel-high frame, and its margin
    width, height = label_box(people(25.0), size)
    box = (slice(margin, margin + height), slice(margin, margin + width))
    assert np.array_equal(out[box], alone[box])
    # four boxes of the zone-label colour: two that overlapped would merge into one
    from crowdstream.stream.overlay import OK_LABEL

    fill = np.all(out == OK_LABEL, axis=2).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(fill)
    boxes = stats[1:][stats[1:, cv2.CC_STAT_AREA] > 200]  # not the small holes inside letters
    assert len(boxes) == 4


@needs_data
def test_full_overlay_on_a_real_crowd_image() -> None:
    from scipy.spatial import cKDTree

    from crowdstream.training.annotations import load_shanghaitech
    from crowdstream.training.density import density_map

    sample = load_shanghaitech(PART_B / "images" / "IMG_10.jpg")
    frame = cv2.imread(str(sample.image_path))
    density = cv2.resize(density_map(sample.points, sample.height, sample.width), None, fx=0.25, fy=0.25)
    zone = Zone(
        "left", [[0, 0], [sample.width / 2, 0], [sample.width / 2, sample.height], [0, sample.height]]
    )
    reading = CameraReading(
        "gate",
        0.0,
        float(len(sample.points)),
        float(len(sample.points)),
        (zone.reading(density, (sample.width, sample.height)),),
        frame_size=(sample.width, sample.height),
    )
    heat = HeatmapAnnotator().annotate(frame.copy(), density)
    changed = np.abs(heat.astype(int) - frame.astype(int)).sum(axis=2) > 30
    heads = sample.points.astype(int)
    assert changed[heads[:, 1], heads[:, 0]].mean() > 0.9  # the heat sits on the annotated heads...
    ys, xs = np.nonzero(np.ones_like(changed))
    far = cKDTree(heads).query(np.stack([xs, ys], 1))[0].reshape(changed.shape) > 60
    assert far.mean() > 0.3 and not changed[far].any()  # ...and nowhere 60 pixels from one
    out = render_overlay(frame, density, reading, [zone])
    assert out.shape == frame.shape and out.dtype == np.uint8
    edge = [tuple(out[y, sample.width // 2]) for y in range(300, 700, 50)]
    assert edge == [OK_COLOR] * len(edge)  # the zone's right edge, at half the width, over the heat
    assert np.array_equal(render_overlay(frame, None, None), frame)


def test_the_count_moves_down_when_the_densest_spot_is_in_its_corner() -> None:
    def count_rows(densest: tuple[int, int]) -> np.ndarray:
        reading = CameraReading("gate", 0.0, 9.0, 9.0, densest=densest, frame_size=(480, 360))
        out = render_overlay(grey_scene(360, 480), None, reading)
        return np.nonzero(np.all(out[:, :40] == COUNT_BACKGROUND, axis=2).any(axis=1))[0]

    assert count_rows((400, 200)).max() < 60  # top-left
    assert count_rows((20, 20)).min() > 300  # bottom-left, clear of the marker
