"""Overlay annotators: heatmap blending, zone outlines in alert colours, counts. Annotators draw on the
scene they are given (supervision's convention); `render_overlay` draws on one copy and leaves the frame
untouched, at any scale."""

from __future__ import annotations

import cv2
import numpy as np

from stream.overlay import (
    ALERT_COLOR,
    OK_COLOR,
    CountAnnotator,
    HeatmapAnnotator,
    ZoneAnnotator,
    blend_heatmap,
    render_overlay,
)
from stream.readings import CameraReading
from stream.zones import Zone, ZoneReading
from tests.data_paths import PART_B, needs_data


def grey_scene(height: int = 120, width: int = 160) -> np.ndarray:
    return np.full((height, width, 3), 100, dtype=np.uint8)


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
    assert (out[30, 55:66] != 100).any()  # the marker, centred on (x=60, y=30)


def test_zone_outline_turns_alert_colour_over_threshold() -> None:
    zone = Zone("door", [[40, 60], [120, 60], [120, 110], [40, 110]])
    calm = ZoneReading("door", 3.0, threshold=5.0)
    crowded = ZoneReading("door", 9.0, threshold=5.0)
    annotator = ZoneAnnotator(thickness=3)
    edge = (85, 110)  # bottom edge, far from the label at the top-left corner
    assert tuple(annotator.annotate(grey_scene(), [zone], [calm])[edge[1], edge[0]]) == OK_COLOR
    assert tuple(annotator.annotate(grey_scene(), [zone], [crowded])[edge[1], edge[0]]) == ALERT_COLOR


def test_count_label_is_drawn_in_the_corner() -> None:
    reading = CameraReading("gate", 0.0, 12.0, 11.0, densest=(100, 80), frame_size=(160, 120))
    out = CountAnnotator().annotate(grey_scene(), reading)
    assert (out[8:20, 8:60] != 100).any()
    assert (out[80, 95:106] != 100).any()  # the densest-point marker


@needs_data
def test_full_overlay_on_a_real_crowd_image() -> None:
    from training.annotations import load_shanghaitech
    from training.density import density_map

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
    out = render_overlay(frame, density, reading, [zone])
    assert out.shape == frame.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(int) - frame.astype(int)).sum(axis=2) > 30
    assert 0.05 < changed.mean() < 0.95  # heatmap where the heads are, the rest of the scene visible
    assert np.array_equal(render_overlay(frame, None, None), frame)
