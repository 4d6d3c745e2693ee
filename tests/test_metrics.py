"""Metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from crowdstream.training.metrics import (
    bias,
    bias_percent,
    errors_by_bucket,
    game_error,
    mae,
    mae_delta_interval,
    mae_interval,
    nae,
    region_counts_from_density,
    region_counts_from_points,
    rmse,
    sparse_nae,
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
    assert report["51-200"]["bias_pct"] == pytest.approx(100 * 9 / 51)
    assert report["501+"]["bias_pct"] == pytest.approx(-10.0)


def test_bias_percent_is_total_error_over_total_people():
    # +10 on 20 people and -10 on 180: the totals cancel, whatever the per-image ratios (+50 %, -5.6 %)
    assert bias_percent([30, 170], [20, 180]) == pytest.approx(0.0)
    assert bias_percent([30, 180], [20, 180]) == pytest.approx(100 * 10 / 200)
    assert bias_percent([3, 1], [0, 0]) != bias_percent([3, 1], [0, 0])  # NaN: no people to compare with


def test_bucket_bias_pct_by_hand():
    # 0-50: (12-10) + (30-40) = -8 over 50 people; 51-200: (80-100) = -20 over 100
    report = errors_by_bucket([12, 30, 80], [10, 40, 100])
    assert report["0-50"] == pytest.approx(
        {"images": 2, "mae": 6.0, "rmse": math.sqrt(52), "bias": -4.0, "bias_pct": -16.0}
    )
    assert report["51-200"]["bias_pct"] == pytest.approx(-20.0)


def test_sparse_nae_only_counts_images_with_at_most_50_people():
    # |8-10|/10 = 0.2 and |60-50|/50 = 0.2 are sparse; 300 vs 100 (2.0) is not; the empty image is skipped
    assert sparse_nae([8, 60, 300, 4], [10, 50, 100, 0]) == pytest.approx(0.2)
    assert sparse_nae([300], [100]) != sparse_nae([300], [100])  # NaN: no sparse image


def test_mae_interval_by_hand():
    # errors 0 and 10: a resample of two draws has mean 0 (p=1/4), 5 (1/2) or 10 (1/4), so the
    # 2.5th and 97.5th percentiles of the bootstrap distribution are 0 and 10
    assert mae_interval([0, 10], [0, 0]) == pytest.approx((0.0, 10.0))
    assert mae_interval([5, 5, 5], [2, 8, 2]) == pytest.approx((3.0, 3.0))  # every resample has MAE 3
    assert mae_interval([7], [2]) == pytest.approx((5.0, 5.0))


def test_mae_interval_matches_the_normal_approximation_and_is_reproducible():
    # 400 errors spread evenly over 0..2: mean 1, sd 2 / sqrt(12) = 0.577, so the interval is about
    # 1 ± 1.96 × 0.577 / sqrt(400) = 1 ± 0.057
    predicted, truth = np.linspace(0, 2, 400), np.zeros(400)
    low, high = mae_interval(predicted, truth)
    assert low == pytest.approx(1 - 0.057, abs=0.006) and high == pytest.approx(1 + 0.057, abs=0.006)
    assert mae_interval(predicted, truth) == (low, high)  # fixed seed: the same interval every run
    assert mae_interval(predicted, truth, seed=1) != (low, high)


def test_paired_mae_delta_interval_by_hand():
    truth = [10, 20, 30]
    # every image 2 better than the baseline: every resample's change is -2
    assert mae_delta_interval([10, 20, 30], [12, 18, 32], truth) == pytest.approx((-2.0, -2.0))
    # one image 4 better, one 4 worse: resamples range over -4..+4
    assert mae_delta_interval([10, 24], [14, 20], [10, 20]) == pytest.approx((-4.0, 4.0))


def test_the_paired_interval_is_narrower_than_the_unpaired_one_when_errors_share_hard_images():
    rng = np.random.default_rng(3)
    truth = rng.uniform(50, 500, 80)
    hardness = rng.normal(0, 40, 80)  # the same hard images for both models
    baseline = truth + hardness
    improved = truth + hardness * 0.9 + rng.normal(0, 2, 80)
    low, high = mae_delta_interval(improved, baseline, truth)
    assert high < 0  # the improvement is real and the paired interval shows it
    base_low, base_high = mae_interval(baseline, truth)
    new_low, new_high = mae_interval(improved, truth)
    assert new_high > base_low  # side by side, the two MAE intervals overlap
    assert high - low < (base_high - base_low) / 3
