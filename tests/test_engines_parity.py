"""ONNX Runtime and PyTorch (TorchScript from the same weights) agree on real ShanghaiTech tiles.

Relative density error is max |a - b| / max |a| over the compared maps; counts must agree within 1e-3
people. The model is CrowdLite0 with ImageNet weights and a seeded head, exported once per session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from crowdstream.engines.counting import count_frames
from crowdstream.engines.engine import load_engine
from crowdstream.engines.frames import read_frame, shanghaitech_images, spread
from crowdstream.engines.onnx_engine import OnnxEngine
from crowdstream.engines.preprocess import prepare_frame
from crowdstream.training.export import export_onnx, export_torchscript
from crowdstream.training.models import CrowdLite0
from tests.data_paths import DATA_ROOT, needs_data

pytestmark = needs_data
DENSITY_RTOL = 1e-4
COUNT_ATOL = 1e-3


def relative_error(expected: np.ndarray, actual: np.ndarray) -> float:
    """max |expected - actual| / max |expected|: scale-free, and meaningful for sparse density maps."""
    scale = float(np.abs(expected).max())
    assert scale > 0, "reference output is all zeros: the comparison would prove nothing"
    return float(np.abs(expected - actual).max()) / scale


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(ONNX, TorchScript) of one seeded CrowdLite0, with the count head applied."""
    torch.manual_seed(1234)
    model = CrowdLite0(pretrained=True).eval()
    folder = tmp_path_factory.mktemp("crowd-lite0")
    return (
        export_onnx(model, folder / "model.onnx", use_count_head=True),
        export_torchscript(model, folder / "model.pt", use_count_head=True),
    )


@pytest.fixture(scope="session")
def frames() -> list[np.ndarray]:
    """Real frames from both ShanghaiTech parts (validation images: never used for calibration)."""
    return [read_frame(p) for p in spread(shanghaitech_images(DATA_ROOT, "validation"), 4)]


@pytest.fixture(scope="session")
def tiles(frames: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([prepare_frame(f)[0] for f in frames])


@pytest.fixture(scope="session")
def engines(exported: tuple[Path, Path]):
    onnx_path, script_path = exported
    return load_engine(onnx_path, threads=2), load_engine(script_path, threads=2)


def test_auto_backend_follows_the_file_type(engines) -> None:
    onnx_engine, torch_engine = engines
    assert (onnx_engine.backend, torch_engine.backend) == ("onnxruntime", "torch")


@pytest.mark.parametrize("batch", [1, 8])
def test_onnxruntime_and_torch_agree_on_real_tiles(engines, tiles: np.ndarray, batch: int) -> None:
    assert len(tiles) >= batch
    onnx_engine, torch_engine = engines
    inputs = tiles[:batch]
    ort_density, ort_count = onnx_engine.infer(inputs)
    pt_density, pt_count = torch_engine.infer(inputs)
    assert ort_density.shape == pt_density.shape == (batch, 1, 56, 56)
    assert ort_count.shape == pt_count.shape == (batch,)
    assert relative_error(pt_density, ort_density) < DENSITY_RTOL
    np.testing.assert_allclose(ort_count, pt_count, rtol=0, atol=COUNT_ATOL)


def test_tiled_frames_agree_through_count_frames(engines, frames: list[np.ndarray]) -> None:
    onnx_engine, torch_engine = engines
    ort_results = count_frames(onnx_engine, frames, max_batch=8)
    pt_results = count_frames(torch_engine, frames, max_batch=8)
    assert any(r.grid.count > 1 for r in ort_results), "no frame was tiled"
    for ort_result, pt_result in zip(ort_results, pt_results, strict=True):
        assert relative_error(pt_result.density, ort_result.density) < DENSITY_RTOL
        assert abs(ort_result.count - pt_result.count) < COUNT_ATOL


def test_batching_does_not_change_results(engines, tiles: np.ndarray) -> None:
    onnx_engine, _ = engines
    together, counts = onnx_engine.infer(tiles[:8])
    alone = [onnx_engine.infer(tiles[i : i + 1]) for i in range(8)]
    assert relative_error(together, np.concatenate([d for d, _ in alone])) < DENSITY_RTOL
    np.testing.assert_allclose(counts, np.concatenate([c for _, c in alone]), rtol=0, atol=COUNT_ATOL)


def test_a_session_is_created_once_per_process(exported: tuple[Path, Path]) -> None:
    first, second = OnnxEngine(exported[0], threads=1), OnnxEngine(exported[0], threads=1)
    assert first.session is second.session
    assert OnnxEngine(exported[0], threads=2, spin=True).session is not first.session
