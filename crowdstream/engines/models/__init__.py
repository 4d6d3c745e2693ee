"""Trained model files that ship with the service (see MODEL_CARD.md beside them)."""

from __future__ import annotations

from pathlib import Path

from crowdstream.engines.errors import EngineError

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = MODELS_DIR / "crowd-lite0.onnx"
"""The FP32 model: what fine-tuning, quantising, exporting and the GPU runtimes start from."""
CPU_DEFAULT_MODEL = MODELS_DIR / "crowd-lite0-int8.onnx"
"""What `default` opens on ONNX Runtime (the CPU runtime): the FP32 model's INT8 copy, as accurate on the
hold-out (MODEL_CARD.md, paired comparison) and about twice as fast on the CPUs measured (docs/engines.md)."""
NAMED_MODELS = {
    "default": DEFAULT_MODEL,
    "crowd-lite0": DEFAULT_MODEL,
    "crowd-lite0-int8": CPU_DEFAULT_MODEL,
}
CPU_BACKEND = "onnxruntime"


def resolve_model(model: str | Path, backend: str | None = None) -> Path:
    """A shipped model name ('default', 'crowd-lite0', ...) or a path → an existing file path. `default`
    is the FP32 model, or its INT8 copy when it runs on the CPU backend (`backend="onnxruntime"`)."""
    if str(model) == "default" and backend == CPU_BACKEND:
        model = CPU_DEFAULT_MODEL
    path = NAMED_MODELS.get(str(model), Path(model))
    if not path.is_file():
        known = ", ".join(NAMED_MODELS)
        raise EngineError(f"{path}: model file not found (give a path or one of: {known})")
    return path
