"""Adaptive tiling: where it looks again, what that costs, and how the counts are put together."""

from pathlib import Path

import numpy as np
import pytest

from crowdstream.engines.adaptive import EXTRA_SHARE, densest_window, head_spacing, refinement_windows
from crowdstream.engines.counting import count_frames
from crowdstream.engines.preprocess import plan_tiles


class UniformEngine:
    """Every input gets the same density: `people` per output pixel (56 × 56 of them)."""

    backend = "fake"
    model_path = Path("uniform.onnx")

    def __init__(self, people: float):
        self.people = people
        self.inputs = 0

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.inputs += len(batch)
        density = np.full((len(batch), 1, 56, 56), self.people, np.float32)
        return density, density.reshape(len(batch), -1).sum(1)


def test_head_spacing_from_density():
    assert head_spacing(1.0) == pytest.approx(4.0)  # one person per output pixel: heads 4 input pixels apart
    assert head_spacing(1 / 16) == pytest.approx(16.0)
    assert head_spacing(0.0) == float("inf")


def test_the_window_is_half_the_tile_around_the_densest_spot_and_stays_inside():
    density = np.zeros((56, 56), np.float32)
    density[9:12, 39:42] = 5.0  # a blob centred on row 10, col 40
    window = densest_window(density, (100, 484, 0, 512))  # tile: frame rows 100..484, columns 0..512
    assert (window.y1 - window.y0, window.x1 - window.x0) == (192, 256)
    centre_y, centre_x = 100 + 10.5 * 384 / 56, 40.5 * 512 / 56
    assert window.y0 == 100  # pushed down to the tile's top edge
    assert window.x0 == round(centre_x - 128)
    assert window.y0 <= centre_y <= window.y1


def test_sparse_tiles_are_not_looked_at_again_and_dense_ones_are_within_budget():
    grid = plan_tiles(768, 1024, "adaptive")
    assert grid.count == 4
    sparse = np.full((4, 56, 56), 0.001, np.float32)
    assert refinement_windows(grid, sparse) == []
    dense = np.full((4, 56, 56), 0.5, np.float32)  # heads ~5.7 input px apart
    dense[2] += 0.1  # the densest tile first
    windows = refinement_windows(grid, dense)
    assert len(windows) == int(np.ceil(4 * EXTRA_SHARE)) == 2
    y0, y1, x0, x1 = grid.boxes()[2]
    assert y0 <= windows[0].y0 and windows[0].y1 <= y1 and x0 <= windows[0].x0 and windows[0].x1 <= x1


def test_a_window_count_replaces_the_first_pass_inside_it():
    frame = np.zeros((768, 1024, 3), np.uint8)
    engine = UniformEngine(0.5)
    (result,) = count_frames(engine, [frame], "adaptive", scale=0.25)
    per_input = 0.5 * 56 * 56  # 1568 people
    # 4 grid tiles; 2 windows, each a quarter of a tile (392 people in the first pass) counted again as 1568
    assert result.count == pytest.approx(4 * per_input + 2 * (per_input - per_input / 4), rel=1e-5)
    assert result.inputs == engine.inputs == 6
    assert result.density.sum() == pytest.approx(result.count, rel=1e-4)


def test_auto_and_fixed_grids_keep_a_single_pass():
    engine = UniformEngine(0.5)
    (result,) = count_frames(engine, [np.zeros((768, 1024, 3), np.uint8)], "auto")
    assert result.windows == [] and engine.inputs == 4
    assert result.count == pytest.approx(4 * 0.5 * 56 * 56, rel=1e-6)


def test_the_densest_point_is_not_drawn_to_the_frame_edge():
    from crowdstream.engines.counting import densest_point

    density = np.zeros((60, 80), np.float32)
    density[28:33, 38:43] = 1.0  # a 5x5 crowd in the middle
    density[0:3, 0:5] = 1.0  # 3x5 of the same density cut by the top edge: less crowd in all
    x, y = densest_point(density, (800, 600))
    assert (x, y) == (405, 305)  # the centre of the middle crowd, in frame pixels
