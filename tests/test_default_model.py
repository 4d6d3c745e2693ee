"""Which file `default` opens: the INT8 copy on ONNX Runtime (the CPU), the FP32 model everywhere else."""

from __future__ import annotations

import onnx
import pytest

from crowdstream.engines.engine import load_engine, runtime_model
from crowdstream.engines.errors import EngineError
from crowdstream.engines.models import resolve_model


def quantized(path) -> bool:
    return any(node.op_type in ("QLinearConv", "QuantizeLinear") for node in onnx.load(str(path)).graph.node)


def test_default_opens_the_int8_copy_on_the_cpu_runtime_and_fp32_elsewhere():
    cpu, backend = runtime_model("default")
    assert backend == "onnxruntime" and cpu.name == "crowd-lite0-int8.onnx" and quantized(cpu)
    torch_file, _ = runtime_model("default", "torch")
    assert torch_file.name == "crowd-lite0.onnx" and not quantized(torch_file)
    assert load_engine("default", threads=1).model_path == cpu


def test_explicit_names_and_the_fp32_master_are_not_redirected():
    assert runtime_model("crowd-lite0")[0].name == "crowd-lite0.onnx"
    assert runtime_model("crowd-lite0-int8", "torch")[0].name == "crowd-lite0-int8.onnx"
    assert resolve_model("default").name == "crowd-lite0.onnx"  # what fine-tuning and quantising start from
    with pytest.raises(EngineError, match="unknown backend"):
        runtime_model("default", "openvino")
