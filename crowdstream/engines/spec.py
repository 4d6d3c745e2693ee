"""The model's input/output contract: one place that training, export and every runtime agree on,
and `Engine`, the interface every runtime implements. It lives here, beside the shapes it promises,
rather than with `load_engine` (engines.engine), which imports the backends: engines.counting needs the
type, and the torch backend counts through engines.counting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from crowdstream.engines.errors import EngineError

INPUT_SIZE = 224
"""Side of the square RGB tile the network sees (fixed by the product design)."""

OUTPUT_STRIDE = 4
"""The density map is INPUT_SIZE / OUTPUT_STRIDE pixels on a side; its integral is the count."""

OUTPUT_SIZE = INPUT_SIZE // OUTPUT_STRIDE

INPUT_NAME = "image"
DENSITY_NAME = "density"
COUNT_NAME = "count"

# ImageNet statistics in 0..255 RGB units: the EfficientNet-Lite weights were trained with them.
PIXEL_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
PIXEL_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0

DEFAULT_TILES = "adaptive"
"""The product's tiling: the `auto` grid plus a closer look at the densest regions (engines.adaptive);
`auto` or a grid such as `2x3` keep one pass."""

TILE_TARGET_SIDE = 448
"""`auto` tiling picks the grid whose tiles are closest to this many frame pixels on a side."""
TILE_ASPECTS = (0.75, 2.0)
"""...among grids whose tiles' width over height lies in this range: every tile is squeezed into the square
input, and the model was trained on tiles of the `auto` tile's own shape (4:3 on part B's 1024×768) × 0.8–1.25.
A 768×576 frame cut 1×2 gave tiles of 0.67, and part B's hold-out shrunk to that size read 23.7 MAE (−18 %
bias) where 2×2 tiles read 15.9 (−9 %) — PAL cameras (720×576) send frames of that shape."""


@dataclass(frozen=True)
class ModelSpec:
    """Shapes and names of the exported graph: input `image` (N, 3, 224, 224) float32 RGB normalised,
    outputs `density` (N, 1, 56, 56) people per output pixel and `count` (N,) people per tile."""

    input_name: str = INPUT_NAME
    density_name: str = DENSITY_NAME
    count_name: str = COUNT_NAME
    input_size: int = INPUT_SIZE
    output_size: int = OUTPUT_SIZE

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.input_size, self.input_size)


SPEC = ModelSpec()


@runtime_checkable
class Engine(Protocol):
    """A runtime holding one model: whatever runs underneath, `infer` keeps the SPEC signature."""

    backend: str
    model_path: Path

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3, 224, 224) float32 → (density (N, 1, 56, 56), count (N,))."""
        ...


def check_batch(batch: np.ndarray, input_size: int) -> np.ndarray:
    """Validate an input batch early, with a message a user can act on."""
    batch = np.asarray(batch)
    if batch.ndim != 4 or batch.shape[1:] != (3, input_size, input_size) or batch.shape[0] == 0:
        raise EngineError(f"input batch must be (N>=1, 3, {input_size}, {input_size}), got {batch.shape}")
    return np.ascontiguousarray(batch, dtype=np.float32)
