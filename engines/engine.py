"""The runtime interface every backend implements, and `load_engine`, which picks one.

An engine maps a (N, 3, 224, 224) float32 batch (see engines.spec) to `density` (N, 1, 56, 56) and
`count` (N,) NumPy arrays, whatever runs underneath.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from engines.errors import CrowdstreamError
from engines.models import resolve_model


class EngineError(CrowdstreamError):
    """A model file or backend that cannot be used (missing, corrupt, wrong shape, backend absent)."""


@runtime_checkable
class Engine(Protocol):
    backend: str
    model_path: Path

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3, 224, 224) float32 → (density (N, 1, 56, 56), count (N,))."""
        ...


BACKENDS = ("onnxruntime", "tensorrt", "torch")


def load_engine(model: str | Path = "default", backend: str = "auto", threads: int = 0, **options) -> Engine:
    """Open a model with a backend. `auto`: a TensorRT `.engine`/`.plan` file → TensorRT, a `.pt`
    checkpoint → PyTorch, anything else → ONNX Runtime on the CPU (the default everywhere)."""
    path = resolve_model(model)
    if backend == "auto":
        suffix = path.suffix.lower()
        backend = {".engine": "tensorrt", ".plan": "tensorrt", ".pt": "torch", ".pth": "torch"}.get(suffix, "onnxruntime")
    if backend == "onnxruntime":
        from engines.onnx_engine import OnnxEngine

        return OnnxEngine(path, threads=threads, **options)
    if backend == "tensorrt":
        from engines.tensorrt_engine import TensorRTEngine

        return TensorRTEngine.open(path, **options)
    if backend == "torch":
        from engines.torch_engine import TorchEngine

        return TorchEngine(path, threads=threads, **options)
    raise EngineError(f"unknown backend {backend!r}; choose auto or one of {', '.join(BACKENDS)}")


def check_batch(batch: np.ndarray, input_size: int) -> np.ndarray:
    """Validate an input batch early, with a message a user can act on."""
    batch = np.asarray(batch)
    if batch.ndim != 4 or batch.shape[1:] != (3, input_size, input_size):
        raise EngineError(f"input batch must be (N, 3, {input_size}, {input_size}), got {batch.shape}")
    return np.ascontiguousarray(batch, dtype=np.float32)
