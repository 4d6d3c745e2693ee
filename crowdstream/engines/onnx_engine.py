"""ONNX Runtime on the CPU: the default backend.

Graph optimisations are on (ORT_ENABLE_ALL) and sessions are created once per process: opening the
same model with the same settings again returns the existing session, so workers and benchmarks
never pay the optimisation pass twice.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from crowdstream.engines.errors import EngineError
from crowdstream.engines.spec import SPEC, check_batch

_SESSIONS: dict[tuple, object] = {}
_SESSIONS_LOCK = threading.Lock()


def session_options(threads: int = 0, spin: bool = False):
    """Options measured best on small CPUs (docs/engines.md): one operator at a time (sequential
    execution), `threads` workers inside each operator (0: every core) and no busy-wait spinning
    between operators, which only steals cycles from video decoding on a shared machine."""
    import onnxruntime as ort

    if threads < 0:
        raise EngineError(f"threads must be 0 (all cores) or more, got {threads}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.log_severity_level = 3
    return options


def open_session(
    model_path: Path,
    threads: int = 0,
    spin: bool = False,
    providers: tuple[str, ...] = (),
    fold_pads: bool = True,
):
    """The process-wide session for (model file, settings); created on first use. `fold_pads` runs
    engines.onnx_passes first (same results, about twice the speed on exported "same"-padded models)."""
    import onnxruntime as ort

    from crowdstream.engines.onnx_passes import optimised_model

    path = Path(model_path).resolve()
    providers = tuple(providers) or ("CPUExecutionProvider",)
    key = (path, path.stat().st_mtime_ns, threads, spin, providers, fold_pads)
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            try:
                model = optimised_model(path) if fold_pads else str(path)
                _SESSIONS[key] = ort.InferenceSession(
                    model, session_options(threads, spin), providers=list(providers)
                )
            except Exception as exc:  # onnxruntime and onnx raise their own Fail/InvalidGraph/... types
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise EngineError(f"{model_path}: not a usable ONNX model ({reason[:200]})") from exc
        return _SESSIONS[key]


class OnnxEngine:
    """An ONNX model run by ONNX Runtime; checks the model against engines.spec when opened."""

    backend = "onnxruntime"

    def __init__(
        self,
        model_path: Path,
        threads: int = 0,
        spin: bool = False,
        providers: tuple[str, ...] = (),
        fold_pads: bool = True,
    ):
        self.model_path = Path(model_path)
        self.session = open_session(self.model_path, threads, spin, providers, fold_pads)
        self._check_signature()

    def _check_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if SPEC.input_name not in inputs:
            raise EngineError(
                f"{self.model_path}: model has no input named {SPEC.input_name!r} "
                f"(inputs: {', '.join(inputs) or 'none'})"
            )
        arg = inputs[SPEC.input_name]
        shape = arg.shape
        if len(shape) != 4 or list(shape[1:]) != list(SPEC.input_shape):
            raise EngineError(
                f"{self.model_path}: input {SPEC.input_name!r} has shape {shape}, "
                f"expected [N, {', '.join(map(str, SPEC.input_shape))}]"
            )
        if isinstance(shape[0], int):
            raise EngineError(
                f"{self.model_path}: input {SPEC.input_name!r} has a fixed batch of {shape[0]}; "
                "export it with a dynamic batch axis"
            )
        if arg.type != "tensor(float)":
            raise EngineError(
                f"{self.model_path}: input {SPEC.input_name!r} is {arg.type}, expected tensor(float)"
            )
        missing = {SPEC.density_name, SPEC.count_name} - outputs
        if missing:
            raise EngineError(
                f"{self.model_path}: model lacks output(s) {', '.join(sorted(missing))} "
                f"(outputs: {', '.join(sorted(outputs)) or 'none'})"
            )

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = check_batch(batch, SPEC.input_size)
        density, count = self.session.run([SPEC.density_name, SPEC.count_name], {SPEC.input_name: batch})
        return density, count.reshape(-1)
