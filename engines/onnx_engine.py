"""ONNX Runtime on the CPU: the default backend. One session per process, graph optimisations on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.engine import EngineError, check_batch
from engines.spec import SPEC


class OnnxEngine:
    backend = "onnxruntime"

    def __init__(self, model_path: Path, threads: int = 0, providers: list[str] | None = None):
        import onnxruntime as ort

        self.model_path = Path(model_path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads  # 0 lets ONNX Runtime use every core
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.model_path), options,
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise EngineError(f"{self.model_path}: not a usable ONNX model ({str(exc).splitlines()[0]})") from exc
        self._check_signature()

    def _check_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if SPEC.input_name not in inputs:
            raise EngineError(f"{self.model_path}: model has no input named {SPEC.input_name!r} "
                              f"(inputs: {', '.join(inputs) or 'none'})")
        shape = inputs[SPEC.input_name].shape
        if len(shape) != 4 or list(shape[1:]) != list(SPEC.input_shape):
            raise EngineError(f"{self.model_path}: input {SPEC.input_name!r} has shape {shape}, "
                              f"expected [N, {', '.join(map(str, SPEC.input_shape))}]")
        missing = {SPEC.density_name, SPEC.count_name} - outputs
        if missing:
            raise EngineError(f"{self.model_path}: model lacks output(s) {', '.join(sorted(missing))}")

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = check_batch(batch, SPEC.input_size)
        density, count = self.session.run([SPEC.density_name, SPEC.count_name], {SPEC.input_name: batch})
        return density, count.reshape(-1)
