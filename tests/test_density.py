"""Ground-truth density maps: the integral equals the heads inside the image, whatever the method."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdstream.training.density import DensityConfig, adaptive_sigmas, density_map

METHODS = ["gaussian", "adaptive", "disc"]


@st.composite
def scenes(draw):
    height = draw(st.integers(1, 120))
    width = draw(st.integers(1, 120))
    n = draw(st.integers(0, 60))
    xs = draw(st.lists(st.floats(0, width, exclude_max=True), min_size=n, max_size=n))
    ys = draw(st.lists(st.floats(0, height, exclude_max=True), min_size=n, max_size=n))
    return height, width, np.array(list(zip(xs, ys, strict=True)), dtype=float).reshape(-1, 2)


@settings(max_examples=60, deadline=None)
@given(scene=scenes(), method=st.sampled_from(METHODS), sigma=st.floats(0.5, 20))
def test_integral_equals_head_count(scene, method, sigma):
    height, width, points = scene
    density = density_map(points, height, width, DensityConfig(method=method, sigma=sigma))
    assert density.shape == (height, width)
    assert density.min() >= 0
    assert abs(float(density.sum(dtype=np.float64)) - len(points)) < 1e-3


@pytest.mark.parametrize("method", METHODS)
def test_heads_on_the_border_and_on_the_same_pixel_keep_their_mass(method):
    points = np.array([[0, 0], [99.99, 79.99], [0, 40], [50, 50], [50, 50], [50.2, 50.3]])
    density = density_map(points, 80, 100, DensityConfig(method=method, sigma=8))
    assert abs(density.sum() - len(points)) < 1e-3
    assert density[0, 0] > density[0, 10]  # the corner head stays concentrated at its corner


def test_points_outside_the_image_are_not_counted():
    density = density_map(np.array([[-5.0, 3.0], [10.0, 200.0], [5.0, 5.0]]), 20, 20)
    assert abs(density.sum() - 1.0) < 1e-4


def test_adaptive_sigma_follows_neighbour_distance_and_lone_heads_get_the_default():
    config = DensityConfig(beta=0.3, k=3, sigma=7.0)
    assert adaptive_sigmas(np.array([[10.0, 10.0]]), config).tolist() == [7.0]
    grid = np.array([[x, y] for x in range(0, 100, 10) for y in range(0, 100, 10)], dtype=float)
    sigmas = adaptive_sigmas(grid, config)
    inner = (grid[:, 0] > 0) & (grid[:, 0] < 90) & (grid[:, 1] > 0) & (grid[:, 1] < 90)
    assert np.allclose(sigmas[inner], 0.3 * 10.0)  # the 3 nearest neighbours are all 10 px away


def test_gaussian_peak_is_on_the_head():
    density = density_map(np.array([[30.5, 20.5]]), 50, 60, DensityConfig(method="gaussian", sigma=3))
    y, x = np.unravel_index(density.argmax(), density.shape)
    assert (x, y) == (30, 20)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown density method"):
        density_map(np.array([[1.0, 1.0]]), 4, 4, DensityConfig(method="circle"))
