"""TensorRT engine cache keys and precision rules: pure logic, tested without a GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from crowdstream.engines.engine_cache import (
    cache_dir,
    cache_key,
    cached_engine,
    engine_path,
    find_cached_engine,
    onnx_precision,
    resolve_precision,
    tensorrt_major,
)
from crowdstream.engines.errors import EngineError

H100 = "NVIDIA H100 80GB HBM3"


def conv_model(path: Path, dtype: type = np.float32, seed: int = 0) -> Path:
    """A one-convolution ONNX graph whose weights have `dtype` (FP16 graphs are what TensorRT 11 lowers)."""
    weight = np.random.default_rng(seed).standard_normal((1, 3, 3, 3)).astype(dtype)
    elem = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["density"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("image", elem, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("density", elem, ["N", 1, 224, 224])],
        [numpy_helper.from_array(weight, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return conv_model(tmp_path / "model.onnx")


def test_the_key_holds_model_hash_gpu_and_version(model: Path) -> None:
    key = cache_key(model, "fp16", 32, 8, gpu=H100, tensorrt_version="10.9.0.34")
    assert len(key.model_sha256) == 64 and key.gpu == H100 and key.tensorrt == "10.9.0.34"
    name = key.filename("model")
    assert name == f"model-{key.model_sha256[:16]}-nvidia-h100-80gb-hbm3-trt10.9.0.34-fp16-b8-32.engine"


def test_the_key_changes_with_every_input(model: Path, tmp_path: Path) -> None:
    base = cache_key(model, "fp16", 32, 8, gpu=H100, tensorrt_version="10.9.0")
    other_weights = conv_model(tmp_path / "other.onnx", seed=1)
    variants = [
        cache_key(other_weights, "fp16", 32, 8, gpu=H100, tensorrt_version="10.9.0"),
        cache_key(model, "fp16", 32, 8, gpu="NVIDIA L4", tensorrt_version="10.9.0"),
        cache_key(model, "fp16", 32, 8, gpu=H100, tensorrt_version="10.10.0"),
        cache_key(model, "fp32", 32, 8, gpu=H100, tensorrt_version="10.9.0"),
        cache_key(model, "fp16", 64, 8, gpu=H100, tensorrt_version="10.9.0"),
        cache_key(model, "fp16", 32, 16, gpu=H100, tensorrt_version="10.9.0"),
    ]
    names = {base.filename("m")} | {k.filename("m") for k in variants}
    assert len(names) == 1 + len(variants)
    assert cache_key(model, "fp16", 32, 8, gpu=H100, tensorrt_version="10.9.0") == base


def test_the_cache_folder_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: Path
) -> None:
    monkeypatch.setenv("CROWDSTREAM_ENGINE_CACHE", str(tmp_path / "engines"))
    key = cache_key(model, gpu=H100, tensorrt_version="10.9.0")
    assert cache_dir() == tmp_path / "engines"
    assert engine_path(model, key).parent == tmp_path / "engines"
    monkeypatch.delenv("CROWDSTREAM_ENGINE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "crowdstream" / "engines"


def test_graph_precision_is_read_from_the_weights(tmp_path: Path) -> None:
    assert onnx_precision(conv_model(tmp_path / "fp32.onnx")) == "fp32"
    assert onnx_precision(conv_model(tmp_path / "fp16.onnx", np.float16)) == "fp16"


def test_tensorrt_10_lowers_precision_itself() -> None:
    assert resolve_precision("auto", "10.9.0", "fp32") == "fp16"
    assert resolve_precision("fp32", "10.9.0", "fp32") == "fp32"


def test_tensorrt_11_follows_the_graph() -> None:
    assert resolve_precision("auto", "11.0.0", "fp32") == "fp32"
    assert resolve_precision("auto", "11.0.0", "fp16") == "fp16"
    with pytest.raises(EngineError, match="strongly typed networks.*modelopt.onnx.autocast"):
        resolve_precision("fp16", "11.0.0", "fp32")


def test_bad_settings_are_rejected(model: Path) -> None:
    with pytest.raises(EngineError, match="precision must be one of"):
        resolve_precision("int4", "10.9.0", "fp32")
    with pytest.raises(EngineError, match=r"1 <= opt \(16\) <= max \(8\)"):
        cache_key(model, max_batch=8, opt_batch=16, gpu=H100, tensorrt_version="10.9.0")
    with pytest.raises(EngineError, match="cannot read a TensorRT version"):
        tensorrt_major("unknown")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_without_tensorrt_nothing_is_cached_and_building_says_why(model: Path, tmp_path: Path) -> None:
    assert find_cached_engine(model) is None
    with pytest.raises(EngineError, match="not installed"):
        cached_engine(model, directory=tmp_path)
