"""Trained model files that ship with the service (see MODEL_CARD.md beside them)."""

from __future__ import annotations

from pathlib import Path

from engines.errors import EngineError

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = MODELS_DIR / "crowd-lite0.onnx"
NAMED_MODELS = {
    "default": DEFAULT_MODEL,
    "crowd-lite0": DEFAULT_MODEL,
    "crowd-lite0-int8": MODELS_DIR / "crowd-lite0-int8.onnx",
}


def resolve_model(model: str | Path) -> Path:
    """A shipped model name ('default', 'crowd-lite0', ...) or a path → an existing file path."""
    path = NAMED_MODELS.get(str(model), Path(model))
    if not path.is_file():
        known = ", ".join(NAMED_MODELS)
        raise EngineError(f"{path}: model file not found (give a path or one of: {known})")
    return path
