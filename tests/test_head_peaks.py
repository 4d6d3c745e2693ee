"""The first marks of a snapshot: head positions as the peaks of hand-made density maps."""

from __future__ import annotations

import numpy as np
import pytest

from crowdstream.stream.head_peaks import head_positions


def blob(shape: tuple[int, int], row: int, col: int, mass: float = 1.0, sigma: float = 1.0) -> np.ndarray:
    """A Gaussian of `mass` people centred on one map pixel (what the model draws for a head)."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    g = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma**2))
    return (mass * g / g.sum()).astype(np.float32)


def test_each_blob_becomes_one_head_at_its_centre_in_frame_pixels() -> None:
    shape = (45, 80)  # a 320x180 frame at a quarter of its size
    density = blob(shape, 10, 20) + blob(shape, 30, 60, mass=1.2) + blob(shape, 40, 5, mass=0.8)
    points = head_positions(density, (320, 180))
    # map pixel (row, col) covers frame x in [4 col, 4 col + 4): its centre is 4 col + 2
    assert points.tolist() == [[242.0, 122.0], [82.0, 42.0], [22.0, 162.0]]  # strongest first


def test_the_count_limits_the_heads_to_the_strongest_peaks() -> None:
    shape = (40, 40)
    density = blob(shape, 5, 5, 1.0) + blob(shape, 20, 30, 0.6) + blob(shape, 33, 10, 0.7)
    assert head_positions(density, (160, 160)).tolist() == [[22.0, 22.0], [42.0, 134.0]]  # 2.3 people
    assert head_positions(density, (160, 160), count=1).tolist() == [[22.0, 22.0]]
    assert len(head_positions(density, (160, 160), count=10)) == 3  # only 3 peaks exist


def test_no_people_no_heads() -> None:
    assert head_positions(np.zeros((20, 30), np.float32), (120, 80)).shape == (0, 2)
    faint = np.full((20, 30), 1e-4, np.float32)  # 0.06 people of background: rounds to nobody
    assert head_positions(faint, (120, 80)).shape == (0, 2)
    assert head_positions(faint, (120, 80), count=3).shape == (0, 2)  # no peak above the noise floor


def test_a_flat_top_is_one_head_and_a_head_on_the_border_is_found() -> None:
    density = np.zeros((10, 10), np.float32)
    density[4, 4:6] = 0.5  # two equal neighbours: one head
    density[0, 9] = 0.7
    points = head_positions(density, (40, 40), count=3)
    assert points.tolist() == [[38.0, 2.0], [18.0, 18.0]]


@pytest.mark.parametrize("frame", [(1280, 720), (100, 100)])
def test_points_scale_to_any_frame_size(frame: tuple[int, int]) -> None:
    density = blob((18, 32), 9, 16)
    ((x, y),) = head_positions(density, frame)
    assert x == pytest.approx(16.5 * frame[0] / 32) and y == pytest.approx(9.5 * frame[1] / 18)
