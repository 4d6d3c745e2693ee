"""The demo clip's description: its schedule by hand, and the bundled clip's frames against its source images."""

import cv2
import numpy as np
import pytest

from crowdstream.stream.sources import DEMO_CLIP
from crowdstream.training.demo_clip import (
    IMAGES,
    Layer,
    demo_scenes,
    schedule,
    scored_frames,
    view_matrix,
    visible_points,
)
from tests.data_paths import PART_B, needs_data


def test_schedule_by_hand():
    # 2 shots of 4 frames (1 s at 4 fps), fading over 2 frames (0.5 s)
    frames = schedule(2, fps=4, seconds=1.0, fade=0.5)
    assert frames == [
        (Layer(0, 0),),
        (Layer(0, 1),),
        (Layer(0, 2, 1 - 1 / 3), Layer(1, 0, 1 / 3)),
        (Layer(0, 3, 1 - 2 / 3), Layer(1, 1, 2 / 3)),
        (Layer(1, 2),),
        (Layer(1, 3),),
    ]
    # the bundled clip: 8 shots of 48 frames overlapping by 6 → 8 × 48 − 7 × 6 = 342 frames (28.5 s at 12 fps)
    assert len(schedule(len(IMAGES))) == 342


def test_scored_frames_skip_the_cross_fades():
    chosen = scored_frames(per_shot=3)
    frames = schedule(len(IMAGES))
    assert len(chosen) == 3 * len(IMAGES)
    assert all(len(frames[number]) == 1 and frames[number][0] == layer for number, layer in chosen.items())
    assert {layer.shot for layer in chosen.values()} == set(range(len(IMAGES)))


def test_first_frame_window_by_hand():
    # t=0 zooming in on a 1024×768 image: the window is the full width, 576 rows from y = 0.6 × 192
    matrix = view_matrix(1024, 768, 0.0, zoom_in=True)
    assert matrix == pytest.approx(np.float32([[1.25, 0, 0], [0, 1.25, -115.2 * 1.25]]))
    points = np.array([[0, 115.1], [0, 115.3], [1023.9, 691.1], [10, 691.3]], np.float32)
    assert visible_points(points, matrix) == pytest.approx(
        np.array([[0, 0.125], [1279.875, 719.875]]), abs=1e-3
    )


@needs_data
def test_clip_frames_show_their_window_and_its_heads():
    scenes = demo_scenes(DEMO_CLIP, PART_B / "images", per_shot=2)
    assert [len(shot) for shot in scenes] == [2] * len(IMAGES)
    first = scenes[0][0]
    assert first.name == "shot 1 frame 0"
    # frame 0 shows rows 115.2..691.2 of IMG_6 at 1.25×: the decoded frame matches that crop...
    source = cv2.imread(str(PART_B / "images" / "IMG_6.jpg"))
    expected = cv2.resize(source[115:691], (1280, 720)).astype(int)
    assert np.abs(first.image.astype(int) - expected).mean() < 8
    other = cv2.resize(source[0:576], (1280, 720)).astype(int)
    assert (
        np.abs(first.image.astype(int) - other).mean() > 2 * np.abs(first.image.astype(int) - expected).mean()
    )
    # ...and its truth is the annotated heads in those rows
    from scipy.io import loadmat

    heads = loadmat(str(PART_B / "ground-truth" / "GT_IMG_6.mat"))["image_info"][0, 0][0, 0][0]
    assert first.count == int(((heads[:, 1] >= 115.2) & (heads[:, 1] < 691.2)).sum())
