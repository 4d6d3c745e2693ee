"""Quantisation-aware fine-tuning (training.quantisation_aware): the simulated student rounds where the real
INT8 copy rounds, a fine-tune under it writes plain FP32 weights, and a copy of another model is refused."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.models import CPU_DEFAULT_MODEL, DEFAULT_MODEL
from crowdstream.engines.onnx_torch import load_onnx_module
from crowdstream.engines.preprocess import prepare_frame
from crowdstream.training.finetune import FinetuneRunConfig, run_finetune
from crowdstream.training.quantisation_aware import quantisation_params, simulate_int8
from tests.data_paths import DATA_ROOT, needs_data
from tests.test_finetune import make_camera

DEMO_CLIP = Path(__file__).resolve().parents[1] / "crowdstream" / "stream" / "demo" / "crowd-demo.mp4"


def demo_tiles(count: int = 2) -> np.ndarray:
    capture = cv2.VideoCapture(str(DEMO_CLIP))
    ok, frame = capture.read()
    capture.release()
    assert ok, DEMO_CLIP
    return prepare_frame(frame, "auto")[0][:count]


def quantised_activations(tiles: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, tuple[float, int]]]:
    """Every activation the shipped INT8 copy quantises, as ONNX Runtime computes it (uint8 codes)."""
    params = quantisation_params(CPU_DEFAULT_MODEL)
    names = [name for name in params if name != "image"]
    model = onnx.load(str(CPU_DEFAULT_MODEL))
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(f"{name}_quantized", onnx.TensorProto.UINT8, None)
        for name in names
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, {"image": tiles}), strict=True)
    )
    return {name: values[f"{name}_quantized"].astype(np.float32) for name in names}, params


def student_activations(tiles: np.ndarray, names: list[str], simulated: bool) -> dict[str, np.ndarray]:
    module = load_onnx_module(DEFAULT_MODEL)
    if simulated:
        simulate_int8(module, DEFAULT_MODEL, CPU_DEFAULT_MODEL)
    module.output_names = [*module.output_names, *names]
    with torch.no_grad():
        outputs = module(torch.from_numpy(tiles))
    return {name: value.numpy() for name, value in zip(module.output_names, outputs, strict=True)}


def test_the_simulated_student_rounds_where_the_int8_copy_rounds():
    """On a demo frame's tiles the student's activations, in the copy's quanta, are the copy's: the first
    ten quantised tensors to one quantum almost everywhere, every tensor within 1.5 quanta on average. The
    FP32 student is tens of quanta off at the Conv outputs the copy clips (ONNX Runtime fuses Conv and Clip
    and rounds once, over the Clip's range: stage 6's simulation missed that)."""
    tiles = demo_tiles()
    copy, params = quantised_activations(tiles)
    names = list(copy)

    def quanta_off(student: dict[str, np.ndarray], name: str) -> np.ndarray:
        scale, zero_point = params[name]
        return np.abs(student[name] / scale + zero_point - copy[name])

    simulated = student_activations(tiles, names, simulated=True)
    for index, name in enumerate(names):
        off = quanta_off(simulated, name)
        assert off.mean() < 1.5, (name, off.mean())
        if index < 10:
            assert (off > 1.01).mean() < 0.001, (name, (off > 1.01).mean())
    plain = student_activations(tiles, names, simulated=False)
    assert max(quanta_off(plain, name).mean() for name in names[:10]) > 10


def test_an_int8_copy_of_another_model_is_a_one_line_error(tmp_path):
    model = onnx.load(str(CPU_DEFAULT_MODEL))
    model.graph.initializer.extend(
        [onnx.numpy_helper.from_array(np.float32(0.1), "elsewhere_scale"),
         onnx.numpy_helper.from_array(np.uint8(0), "elsewhere_zero_point")]
    )  # fmt: skip
    other = tmp_path / "other-int8.onnx"
    onnx.save(model, str(other))
    with pytest.raises(CrowdstreamError, match=r"is not an INT8 copy of .*: it quantises elsewhere"):
        simulate_int8(load_onnx_module(DEFAULT_MODEL), DEFAULT_MODEL, other)


@needs_data
def test_a_quantisation_aware_fine_tune_writes_fp32_weights_that_pass_parity(tmp_path):
    """run_finetune checks the written file against the student (export.check_parity); the student has its
    plain steps back by then, so the run ends with the FP32 file's parity checked and the setting recorded."""
    camera = make_camera(tmp_path / "camera")
    out = tmp_path / "gate.onnx"
    config = FinetuneRunConfig(
        dataset=camera, base=str(DEFAULT_MODEL), out=out, minutes=10, steps=2, holdout=1, standard_limit=1,
        threads=1, replay_images=4, quantisation_aware=CPU_DEFAULT_MODEL, data_root=DATA_ROOT,
    )  # fmt: skip
    report = run_finetune(config)
    assert report["steps"] == 2
    assert json.loads(out.with_suffix(".report.json").read_text())["settings"]["quantisation_aware"] == str(
        CPU_DEFAULT_MODEL
    )
    written = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    base = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(DEFAULT_MODEL)).graph.initializer}
    assert written.keys() == base.keys()
    assert all(value.dtype == np.float32 for value in written.values() if value.dtype.kind == "f")
    assert any(not np.array_equal(written[name], base[name]) for name in base)
