"""The count head's fit, and its refit inside an exported ONNX model (after a fine-tune moved the raw map)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from crowdstream.engines.onnx_engine import OnnxEngine
from crowdstream.engines.preprocess import prepare_frame
from crowdstream.training.annotations import Sample
from crowdstream.training.calibrate import COEFFICIENTS, fit_coefficients, refit_onnx_count_head
from crowdstream.training.datasets import LoadedImage
from crowdstream.training.export import export_onnx
from crowdstream.training.models import CrowdLite0


def test_fit_recovers_a_constant_factor_from_hand_made_tiles():
    integral = np.array([0.5, 2.0, 10.0, 40.0, 150.0, 600.0])
    a, b, c = fit_coefficients(integral, 1.5 * integral)
    assert a == pytest.approx(1.5, abs=1e-6)
    assert b == pytest.approx(0.0, abs=1e-6) and c == pytest.approx(0.0, abs=1e-6)


def test_fit_of_a_count_that_grows_slower_than_the_integral_lowers_dense_tiles():
    integral = np.array([1.0, 5.0, 20.0, 80.0, 300.0])
    truth = integral * (1.2 - 0.05 * np.log1p(integral))
    a, b, c = fit_coefficients(integral, truth)
    assert (a, b, c) == pytest.approx((1.2, -0.05, 0.0), abs=1e-6)


def initialisers(path: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory) -> Path:
    """A seeded CrowdLite0 exported with the identity count head (count = density integral)."""
    torch.manual_seed(7)
    return export_onnx(CrowdLite0(pretrained=False).eval(), tmp_path_factory.mktemp("m") / "m.onnx", True)


def test_refit_changes_only_the_coefficients_and_the_graph_applies_them(plain_model, tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (448, 448, 3), np.uint8)
    points = rng.uniform(0, 448, (120, 2)).astype(np.float32)
    item = LoadedImage(Sample(Path("noise.png"), points, 448, 448), image, None, "A")

    coefficients = refit_onnx_count_head(plain_model, tmp_path / "refit.onnx", [item, item])

    before, after = initialisers(plain_model), initialisers(tmp_path / "refit.onnx")
    assert before.keys() == after.keys()
    changed = [name for name in before if not np.array_equal(before[name], after[name])]
    assert changed == [COEFFICIENTS]
    assert after[COEFFICIENTS] == pytest.approx(coefficients, rel=1e-6)
    inputs, _ = prepare_frame(image, "auto")
    integral = OnnxEngine(plain_model).infer(inputs)[1]  # identity head: the count is the integral
    log_total = np.log1p(integral)
    a, b, c = coefficients
    expected = integral * (a + b * log_total + c * log_total**2)
    assert OnnxEngine(tmp_path / "refit.onnx").infer(inputs)[1] == pytest.approx(expected, rel=1e-4)


def test_refit_refuses_a_model_without_a_count_head(tmp_path):
    torch.manual_seed(7)
    plain = export_onnx(CrowdLite0(pretrained=False).eval(), tmp_path / "no-head.onnx", False)
    with pytest.raises(ValueError, match="no count head"):
        refit_onnx_count_head(plain, tmp_path / "out.onnx", [])
