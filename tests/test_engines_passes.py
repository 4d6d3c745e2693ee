"""Folding explicit `Pad` nodes into convolutions: fewer nodes, identical outputs (real ORT runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from crowdstream.engines.models import DEFAULT_MODEL
from crowdstream.engines.onnx_passes import constant_folded, fold_pads, optimised_model


def padded_conv_model(
    path: Path, pads: list[int], value: float | None = None, consumer: str = "Conv"
) -> Path:
    """image → Pad(pads[, value]) → Conv 3×3 (or Relu): the pattern TF-style "same" padding exports to."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array(pads, np.int64), "pads"),
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
    ]
    pad_inputs = ["image", "pads"]
    if value is not None:
        inits.append(numpy_helper.from_array(np.array(value, np.float32), "value"))
        pad_inputs.append("value")
    nodes = [helper.make_node("Pad", pad_inputs, ["padded"], mode="constant")]
    if consumer == "Conv":
        nodes.append(helper.make_node("Conv", ["padded", "w"], ["out"], strides=[2, 2], pads=[1, 0, 0, 1]))
    else:
        nodes.append(helper.make_node(consumer, ["padded"], ["out"]))
    graph = helper.make_graph(
        nodes,
        "padded",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [2, 3, 15, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def run(model: bytes | str, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def test_an_asymmetric_zero_pad_folds_into_the_conv(tmp_path: Path) -> None:
    path = padded_conv_model(tmp_path / "m.onnx", [0, 0, 0, 1, 0, 0, 2, 1])
    model = onnx.load(str(path))
    assert fold_pads(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Conv"]
    assert [t.name for t in model.graph.initializer] == ["w"]  # the pad amounts went with the Pad
    conv_pads = [a.ints for a in model.graph.node[0].attribute if a.name == "pads"][0]
    assert list(conv_pads) == [1, 1, 2, 2]  # (top, left, bottom, right): the Conv's own plus the Pad's
    x = np.random.default_rng(1).standard_normal((2, 3, 15, 16)).astype(np.float32)
    np.testing.assert_allclose(run(model.SerializeToString(), x), run(str(path), x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("pads", "value", "consumer"),
    [
        ([0, 0, 1, 1, 0, 0, 1, 1], 0.5, "Conv"),  # non-zero fill is not what Conv padding does
        ([0, 1, 0, 0, 0, 0, 0, 0], None, "Conv"),  # channel padding
        ([0, 0, 1, 1, 0, 0, 1, 1], None, "Relu"),  # not a convolution
    ],
)
def test_other_pads_are_left_alone(
    tmp_path: Path, pads: list[int], value: float | None, consumer: str
) -> None:
    model = onnx.load(str(padded_conv_model(tmp_path / "m.onnx", pads, value, consumer)))
    assert fold_pads(model) == 0
    assert [n.op_type for n in model.graph.node][0] == "Pad"


def test_the_shipped_model_loses_every_pad_and_keeps_its_outputs() -> None:
    assert any(n.op_type == "Pad" for n in constant_folded(DEFAULT_MODEL).graph.node)
    optimised = optimised_model(DEFAULT_MODEL)
    assert not any(n.op_type == "Pad" for n in onnx.load_from_string(optimised).graph.node)
    x = np.random.default_rng(2).standard_normal((2, 3, 224, 224)).astype(np.float32)
    expected, got = run(str(DEFAULT_MODEL), x), run(optimised, x)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
