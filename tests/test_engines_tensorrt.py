"""TensorRT on a real NVIDIA GPU: build through the cache, reuse the cached engine, and agree with
ONNX Runtime on real tiles. Skipped, with the reason, where TensorRT, cuda-python or a GPU is absent
(TensorRT wheels come from NVIDIA's index and need a GPU: see docs/engines.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdstream.engines.engine import load_engine
from crowdstream.engines.errors import EngineError

pytest.importorskip(
    "tensorrt", reason="TensorRT is not installed (pip install 'crowdstream[gpu]' from pypi.nvidia.com)"
)
pytestmark = pytest.mark.gpu

from crowdstream.engines.engine_cache import cached_engine, find_cached_engine  # noqa: E402
from crowdstream.engines.frames import read_frame, shanghaitech_images, spread  # noqa: E402
from crowdstream.engines.info import tensorrt_status  # noqa: E402
from crowdstream.engines.preprocess import prepare_frame  # noqa: E402
from tests.data_paths import DATA_ROOT, needs_data  # noqa: E402


@pytest.fixture(scope="module")
def gpu() -> str:
    status = tensorrt_status()
    if not status.available:
        pytest.skip(f"TensorRT cannot run here: {status.detail}")
    return status.detail


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from crowdstream.training.export import export_onnx
    from crowdstream.training.models import CrowdLite0

    torch.manual_seed(1234)
    return export_onnx(
        CrowdLite0(pretrained=True).eval(), tmp_path_factory.mktemp("trt") / "model.onnx", True
    )


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    frames = [read_frame(p) for p in spread(shanghaitech_images(DATA_ROOT, "validation"), 3)]
    return np.concatenate([prepare_frame(f)[0] for f in frames])


@needs_data
@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-3), ("fp16", 2e-2)])
def test_tensorrt_agrees_with_onnxruntime(
    gpu: str, onnx_model: Path, tiles: np.ndarray, tmp_path: Path, precision: str, tolerance: float
) -> None:
    try:
        path = cached_engine(onnx_model, precision, max_batch=16, opt_batch=8, directory=tmp_path)
    except EngineError as exc:
        if "strongly typed" in str(exc):
            pytest.skip(f"TensorRT 11 takes FP16 from an FP16 graph only: {exc}")
        raise
    engine = load_engine(path)
    assert engine.backend == "tensorrt"
    reference = load_engine(onnx_model, backend="onnxruntime")
    for batch in (1, 8, len(tiles) + 17):  # the last one exceeds max_batch and runs in chunks
        inputs = np.resize(tiles, (batch, *tiles.shape[1:])).astype(np.float32)
        expected_density, expected_count = reference.infer(inputs)
        density, count = engine.infer(inputs)
        assert density.shape == expected_density.shape and count.shape == expected_count.shape
        assert np.abs(density - expected_density).max() / np.abs(expected_density).max() < tolerance
        np.testing.assert_allclose(count, expected_count, rtol=tolerance, atol=tolerance)


def test_the_cache_is_reused(
    gpu: str, onnx_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWDSTREAM_ENGINE_CACHE", str(tmp_path))
    first = cached_engine(onnx_model, "fp32", max_batch=4, opt_batch=2)
    stamp = first.stat().st_mtime_ns
    assert cached_engine(onnx_model, "fp32", max_batch=4, opt_batch=2) == first
    assert first.stat().st_mtime_ns == stamp  # found, not rebuilt
    assert first.with_suffix(".json").is_file()
    assert find_cached_engine(onnx_model) is None  # default settings (auto, 8/32) were never built


def test_a_corrupt_engine_file_is_rejected(gpu: str, tmp_path: Path) -> None:
    path = tmp_path / "corrupt.engine"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(EngineError, match="not a TensorRT engine"):
        load_engine(path)
