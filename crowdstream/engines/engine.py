"""`load_engine`, which picks a backend for a model and opens it.

An engine (engines.spec.Engine) maps a (N, 3, 224, 224) float32 batch to `density` (N, 1, 56, 56) and
`count` (N,) NumPy arrays, whatever runs underneath. Backends import their runtime lazily, so the
service (ONNX Runtime only) never pays for torch or TensorRT.
"""

from __future__ import annotations

from pathlib import Path

from crowdstream.engines.errors import EngineError
from crowdstream.engines.models import resolve_model
from crowdstream.engines.spec import Engine

BACKENDS = ("onnxruntime", "tensorrt", "torch")
TENSORRT_SUFFIXES = (".engine", ".plan")
TORCH_SUFFIXES = (".pt", ".pth", ".ts")


def pick_backend(path: Path) -> str:
    """`auto`: a serialized TensorRT engine → TensorRT, a TorchScript file → PyTorch; an ONNX model →
    TensorRT when this machine already holds a built engine for it (`crowdstream engine build`), else
    ONNX Runtime on the CPU, the default everywhere. Auto never starts a minutes-long engine build."""
    suffix = path.suffix.lower()
    if suffix in TENSORRT_SUFFIXES:
        return "tensorrt"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    from crowdstream.engines.engine_cache import find_cached_engine

    return "tensorrt" if find_cached_engine(path) else "onnxruntime"


def runtime_model(model: str | Path, backend: str = "auto") -> tuple[Path, str]:
    """The file a model (a shipped name or a path) opens with a backend, and the backend, `auto` decided:
    `default` opens its INT8 copy on ONNX Runtime (engines.models.resolve_model)."""
    if backend != "auto" and backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; choose auto or one of {', '.join(BACKENDS)}")
    path = resolve_model(model)
    if backend == "auto":
        backend = pick_backend(path)
    return resolve_model(model, backend), backend


def load_engine(
    model: str | Path = "default", backend: str = "auto", threads: int = 0, device: str = "auto", **options
) -> Engine:
    """Open a model (a shipped name or a path) with a backend: `auto` (see `pick_backend`),
    `onnxruntime`, `tensorrt` (an ONNX model is built into an engine once and cached) or `torch`
    (ONNX or TorchScript, on `device`: auto, cpu, cuda or cuda:N)."""
    path, backend = runtime_model(model, backend)
    if device != "auto" and backend != "torch":
        raise EngineError(
            f"device {device!r} is for the torch backend (ONNX Runtime runs on the CPU, TensorRT on the GPU); "
            "add --backend torch"
        )
    if backend == "onnxruntime":
        from crowdstream.engines.onnx_engine import OnnxEngine

        return OnnxEngine(path, threads=threads, **options)
    if backend == "tensorrt":
        from crowdstream.engines.tensorrt_engine import TensorRTEngine

        if path.suffix.lower() not in TENSORRT_SUFFIXES:
            from crowdstream.engines.engine_cache import cached_engine

            path = cached_engine(path)
        return TensorRTEngine.open(path, **options)
    from crowdstream.engines.torch_engine import TorchEngine

    return TorchEngine(path, threads=threads, device=device, **options)
