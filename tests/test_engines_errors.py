"""Bad model files and bad inputs give one clear EngineError through `load_engine`, never a crash deep
inside a runtime. The wrong-shape models are real ONNX graphs built with the `onnx` helper API."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from crowdstream.engines.engine import load_engine
from crowdstream.engines.errors import CrowdstreamError, EngineError


def write_model(
    path: Path,
    input_shape: list,
    outputs: tuple[str, ...] = ("density", "count"),
    input_type: int = TensorProto.FLOAT,
) -> Path:
    """A tiny valid ONNX graph: `image` → global average pool → outputs (shapes need not match)."""
    image = helper.make_tensor_value_info("image", input_type, input_shape)
    nodes = [helper.make_node("GlobalAveragePool", ["image"], [outputs[0]])]
    values = [helper.make_tensor_value_info(outputs[0], input_type, ["N", 3, 1, 1])]
    for name in outputs[1:]:
        nodes.append(helper.make_node("Identity", [outputs[0]], [name]))
        values.append(helper.make_tensor_value_info(name, input_type, ["N", 3, 1, 1]))
    graph = helper.make_graph(nodes, "wrong", [image], values)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_a_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"nope\.onnx: model file not found"):
        load_engine(tmp_path / "nope.onnx")


def test_engine_errors_are_user_errors() -> None:
    assert issubclass(EngineError, CrowdstreamError)


def test_a_corrupt_model_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(EngineError, match=r"corrupt\.onnx: not a usable ONNX model \(.+\)"):
        load_engine(path)


def test_a_wrong_input_shape_is_rejected(tmp_path: Path) -> None:
    path = write_model(tmp_path / "small.onnx", ["N", 3, 112, 112])
    with pytest.raises(
        EngineError, match=r"input 'image' has shape \['N', 3, 112, 112\], expected \[N, 3, 224, 224\]"
    ):
        load_engine(path)


def test_a_fixed_batch_is_rejected(tmp_path: Path) -> None:
    path = write_model(tmp_path / "fixed.onnx", [1, 3, 224, 224])
    with pytest.raises(EngineError, match="fixed batch of 1; export it with a dynamic batch axis"):
        load_engine(path)


def test_a_wrong_input_type_is_rejected(tmp_path: Path) -> None:
    path = write_model(tmp_path / "half.onnx", ["N", 3, 224, 224], input_type=TensorProto.FLOAT16)
    with pytest.raises(EngineError, match=r"is tensor\(float16\), expected tensor\(float\)"):
        load_engine(path)


def test_missing_outputs_are_named(tmp_path: Path) -> None:
    path = write_model(tmp_path / "one-output.onnx", ["N", 3, 224, 224], outputs=("density",))
    with pytest.raises(EngineError, match=r"lacks output\(s\) count"):
        load_engine(path)


def test_an_unknown_backend_is_rejected() -> None:
    with pytest.raises(EngineError, match="unknown backend 'openvino'"):
        load_engine("default", backend="openvino")


@pytest.mark.parametrize("shape", [(3, 224, 224), (2, 3, 112, 112), (0, 3, 224, 224), (1, 1, 224, 224)])
def test_a_wrong_batch_shape_is_rejected_before_the_runtime(shape: tuple[int, ...]) -> None:
    engine = load_engine("default", threads=1)
    with pytest.raises(EngineError, match=r"input batch must be \(N>=1, 3, 224, 224\)"):
        engine.infer(np.zeros(shape, np.float32))


def test_the_torch_backend_rejects_files_that_are_not_models(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the torch backend needs torch (pip install 'crowdstream[train]')")
    script, onnx_file = tmp_path / "model.pt", tmp_path / "model.onnx"
    script.write_bytes(b"not a zip archive")
    onnx_file.write_bytes(b"not protobuf either")
    with pytest.raises(EngineError, match="model.pt: not a TorchScript model"):
        load_engine(script, backend="torch")
    with pytest.raises(EngineError, match="model.onnx: not a usable ONNX model"):
        load_engine(onnx_file, backend="torch")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_the_tensorrt_backend_says_how_to_install_it() -> None:
    with pytest.raises(EngineError, match=r"tensorrt: not installed \(pip install --extra-index-url"):
        load_engine("default", backend="tensorrt")


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (lambda x: x.mean(1, keepdim=True), r"must return \(density, count\), got Tensor"),
        (
            lambda x: (x[:, :1], x.flatten(1).sum(1)),
            r"outputs have shapes \(1, 1, 224, 224\) and \(1,\), expected \(1, 1, 56, 56\) and \(1,\)",
        ),
    ],
)
def test_a_torchscript_model_breaking_the_contract_is_rejected(tmp_path: Path, outputs, message: str) -> None:
    torch = pytest.importorskip(
        "torch", reason="the torch backend needs torch (pip install 'crowdstream[train]')"
    )

    class Wrong(torch.nn.Module):
        def forward(self, x):
            return outputs(x)

    path = tmp_path / "wrong.pt"
    torch.jit.trace(Wrong(), torch.zeros(1, 3, 224, 224)).save(str(path))
    with pytest.raises(EngineError, match=message):
        load_engine(path)
