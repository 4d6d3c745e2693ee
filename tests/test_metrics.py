"""Metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from training.metrics import (
    bias,
    errors_by_bucket,
    game_error,
    mae,
    nae,
    region_counts_from_density,
    region_counts_from_points,
    rmse,
)


def test_mae_rmse_nae_bias_by_hand():
    predicted, truth = [10, 20, 0, 55], [12, 20, 0, 50]
    assert mae(predicted, truth) == pytest.approx((2 + 0 + 0 + 5) / 4)
    assert rmse(predicted, truth) == pytest.approx(math.sqrt((4 + 0 + 0 + 25) / 4))
    assert nae(predicted, truth) == pytest.approx(
        (2 / 12 + 0 / 20 + 5 / 50) / 3
    )  # the empty image is skipped
    assert bias(predicted, truth) == pytest.approx((-2 + 0 + 0 + 5) / 4)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        mae([1, 2], [1])


def test_game_levels_by_hand():
    # 4x4 image; true heads: two in the top-left quadrant, one bottom-right
    points = np.array([[0.5, 0.5], [1.5, 1.5], [3.5, 3.5]])
    density = np.zeros((4, 4))
    density[0, 0] = 1.0  # top-left: predicts 1 of 2
    density[0, 3] = 1.0  # top-right: predicts 1 of 0
    density[3, 3] = 1.0  # bottom-right: right
    assert game_error(density, points, 4, 4, 0) == pytest.approx(0.0)  # 3 vs 3 overall
    assert game_error(density, points, 4, 4, 1) == pytest.approx(2.0)  # |1-2| + |1-0|
    # 1-pixel cells: head (1.5, 1.5) is missed (+1), the top-right pixel is a false alarm (+1)
    assert game_error(density, points, 4, 4, 2) == pytest.approx(2.0)


def test_region_counts_work_at_any_map_resolution():
    density = np.ones((2, 2)) / 4
    assert region_counts_from_density(density, 1).sum() == pytest.approx(1.0)
    odd = np.ones((3, 5))
    cells = region_counts_from_density(odd, 1)
    assert cells.sum() == pytest.approx(15) and cells[0, 0] == pytest.approx(1.5 * 2.5)
    assert region_counts_from_points(np.array([[9.9, 0.1]]), 10, 10, 1)[0, 1] == 1


def test_buckets_split_sparse_and_dense_scenes():
    report = errors_by_bucket([10, 60, 300, 900], [12, 51, 310, 1000])
    assert list(report) == ["0-50", "51-200", "201-500", "501+"]
    assert report["0-50"]["mae"] == pytest.approx(2) and report["501+"]["bias"] == pytest.approx(-100)
    assert report["51-200"]["images"] == 1
