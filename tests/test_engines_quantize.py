"""INT8 static quantisation: calibration sees training tiles only, and the INT8 model opens through
load_engine and counts close to its FP32 source on held-out images."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from onnx import numpy_helper

from crowdstream.engines.counting import count_frames
from crowdstream.engines.engine import load_engine
from crowdstream.engines.frames import (
    HOLDOUT_EVERY,
    read_frame,
    shanghaitech_images,
    shanghaitech_part,
    spread,
)
from crowdstream.engines.models import DEFAULT_MODEL
from crowdstream.engines.quantize import calibration_tiles, quantize_model
from tests.data_paths import DATA_ROOT as ROOT
from tests.data_paths import needs_data

pytestmark = needs_data


def image_number(path: Path) -> int:
    return int(re.findall(r"\d+", path.stem)[-1])


def test_the_held_out_images_never_reach_calibration() -> None:
    train, validation = shanghaitech_images(ROOT, "train"), shanghaitech_images(ROOT, "validation")
    assert not set(train) & set(validation)
    assert sorted(train + validation) == sorted(shanghaitech_images(ROOT, "all"))
    # ShanghaiTech numbers its images IMG_1 … IMG_n, so the n-th in natural order is IMG_n
    assert all(image_number(p) % HOLDOUT_EVERY == 0 for p in validation)
    assert not any(image_number(p) % HOLDOUT_EVERY == 0 for p in train)
    parts = [len(list((shanghaitech_part(part, ROOT) / "images").glob("*.jpg"))) for part in ("A", "B")]
    assert len(validation) == sum(n // HOLDOUT_EVERY for n in parts)


def test_the_split_is_the_one_training_uses() -> None:
    from crowdstream.training.annotations import split_items

    for part in ("A", "B"):
        train, validation = split_items(shanghaitech_part(part, ROOT))
        folder = f"part_{part}"
        assert [p for p in shanghaitech_images(ROOT, "validation") if folder in p.parts] == validation
        assert [p for p in shanghaitech_images(ROOT, "train") if folder in p.parts] == train


def test_calibration_tiles_are_model_inputs() -> None:
    tiles = calibration_tiles(ROOT, images=3)
    assert tiles.dtype == np.float32 and tiles.shape[1:] == (3, 224, 224) and len(tiles) >= 3
    assert -3 < tiles.mean() < 3 and tiles.std() > 0.3  # standardised pixels, not raw 0..255


@pytest.fixture(scope="module")
def int8_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "int8.onnx"
    return quantize_model(DEFAULT_MODEL, out, calibration_tiles(ROOT, images=4))


def test_int8_model_counts_close_to_fp32(int8_copy: Path) -> None:
    out = int8_copy
    graph = onnx.load(str(out)).graph
    operators = [n.op_type for n in graph.node]
    assert operators.count("QLinearConv") > 20
    tail = operators[len(operators) - operators[::-1].index("Conv") - 1 :]
    assert not any(op.startswith("QLinear") for op in tail)  # density, gain and count stay FP32
    frames = [read_frame(p) for p in spread(shanghaitech_images(ROOT, "validation"), 4)]
    fp32 = np.array([r.count for r in count_frames(load_engine(DEFAULT_MODEL, threads=2), frames)])
    int8_engine = load_engine(out, threads=2)
    int8 = np.array([r.count for r in count_frames(int8_engine, frames)])
    assert int8_engine.backend == "onnxruntime"
    assert np.all(np.isfinite(int8)) and fp32.sum() > 0
    assert abs(int8.sum() - fp32.sum()) / fp32.sum() < 0.15


def exact_qlinear_conv(x: np.ndarray, node: onnx.NodeProto, values: dict[str, np.ndarray]) -> np.ndarray:
    """QLinearConv (group 1) in int64 NumPy: what the operator defines, with no intermediate saturation."""
    x_scale, x_zero, w, w_scale, _, y_scale, y_zero, bias = (values[name] for name in node.input[1:])
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    top, left, bottom, right = attributes["pads"]
    stride_y, stride_x = attributes["strides"]
    padded = np.pad(x.astype(np.int64) - int(x_zero), ((0, 0), (0, 0), (top, bottom), (left, right)))
    windows = sliding_window_view(padded, w.shape[2:], axis=(2, 3))[:, :, ::stride_y, ::stride_x]
    accumulated = np.einsum("nchwij,ocij->nohw", windows, w.astype(np.int64)) + bias[None, :, None, None]
    scaled = accumulated * (float(x_scale) * w_scale[None, :, None, None] / float(y_scale))
    return np.clip(np.rint(scaled) + int(y_zero), 0, 255)


def test_int8_convolutions_are_exact_on_this_cpu(int8_copy: Path) -> None:
    """x86 CPUs without VNNI add uint8 x int8 products in pairs into int16 and saturate (ONNX Runtime's
    AVX2 kernels): with 8-bit weights the first convolution of the copy was off by up to the whole uint8
    range on this project's AVX2 machine (this test fails so there), and counts differed from one host to
    the next. The weights are 7-bit (no pair reaches int16's limit), so the copy computes what it says."""
    model = onnx.load(str(int8_copy))
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weights = [values[n.input[3]] for n in model.graph.node if n.op_type == "QLinearConv"]
    assert max(int(np.abs(w.astype(np.int64)).max()) for w in weights) <= 64
    stem = next(n for n in model.graph.node if n.op_type == "QLinearConv")
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UINT8, None)
        for name in (stem.input[0], stem.output[0])
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    tiles = calibration_tiles(ROOT, images=2)[:2]
    *_, quantised_input, stem_output = session.run(None, {session.get_inputs()[0].name: tiles})
    expected = exact_qlinear_conv(quantised_input, stem, values)
    assert expected.shape == stem_output.shape and expected.std() > 10  # a real feature map
    assert np.abs(stem_output.astype(np.int64) - expected).max() <= 1
