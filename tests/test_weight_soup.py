"""bench/weight_soup.py: the weight average of two fine-tunes, on hand-made tensors."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from crowdstream.training.calibrate import COEFFICIENTS

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "weight_soup.py"
spec = importlib.util.spec_from_file_location("weight_soup", SCRIPT)
weight_soup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(weight_soup)

FIRST = {
    "conv.w": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32),
    "stem.w": np.array([5.0, 6.0], np.float32),
    "shape": np.array([1, 56, 56], np.int64),
    COEFFICIENTS: np.array([1.3, -0.1, 0.01], np.float32),
}
SECOND = {
    "conv.w": np.array([[3.0, 2.0], [1.0, 0.0]], np.float32),
    "stem.w": np.array([5.0, 6.0], np.float32),
    "shape": np.array([1, 56, 56], np.int64),
    COEFFICIENTS: np.array([1.2, -0.05, 0.002], np.float32),
}


def test_halfway_averages_only_the_tensors_that_differ():
    mixed = weight_soup.soup(FIRST, SECOND, 0.5)
    assert set(mixed) == {"conv.w"}  # equal tensors, integer shapes and the count head stay as they are
    np.testing.assert_allclose(mixed["conv.w"], [[2.0, 2.0], [2.0, 2.0]])


@pytest.mark.parametrize("share, expected", [(0.0, [[1, 2], [3, 4]]), (1.0, [[3, 2], [1, 0]])])
def test_the_ends_are_the_two_models(share, expected):
    np.testing.assert_allclose(weight_soup.soup(FIRST, SECOND, share)["conv.w"], expected)


def test_models_of_different_graphs_are_refused():
    with pytest.raises(ValueError, match="do not share one graph"):
        weight_soup.soup(FIRST, {**SECOND, "extra": np.zeros(1, np.float32)}, 0.5)
