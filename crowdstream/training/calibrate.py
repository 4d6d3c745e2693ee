"""The count model: fit CountHead's three coefficients on training tiles, then keep it only if it beats the
plain density integral on the held-out validation images (both numbers are reported); and for one camera,
refit only the head's gain on its few snapshots (camera_gain)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from crowdstream.engines.preprocess import prepare_frame
from crowdstream.training.datasets import LoadedImage
from crowdstream.training.metrics import mae
from crowdstream.training.models import CrowdLite0

COEFFICIENTS = "model.count_head.coefficients"
"""The count head's (a, b, c) in an exported ONNX graph (training.export)."""


@torch.no_grad()
def tile_integrals(
    model: CrowdLite0 | Callable[[np.ndarray], np.ndarray], images: list[LoadedImage], tiles: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(integral per tile, true people per tile, image index per tile) with the stream's tiling; `model` is
    a CrowdLite0 or any function from a tile batch to the density integral per tile."""
    if isinstance(model, CrowdLite0):
        model.eval()
        network = model
        model = lambda inputs: network(torch.from_numpy(inputs)).flatten(1).sum(1).numpy()  # noqa: E731
    integrals, truths, owners = [], [], []
    for index, item in enumerate(images):
        inputs, grid = prepare_frame(item.image, tiles)
        integrals.append(model(inputs))
        points = item.sample.points
        for y0, y1, x0, x1 in grid.boxes():
            inside = (points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1)
            truths.append(float(inside.sum()))
            owners.append(index)
    return np.concatenate(integrals), np.array(truths), np.array(owners)


def head_features(integral: np.ndarray) -> np.ndarray:
    log_total = np.log1p(np.maximum(integral, 0.0))
    return np.stack([integral, integral * log_total, integral * log_total**2], axis=1)


def fit_coefficients(integral: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Least squares for truth ≈ S·(a + b·log1p S + c·log1p² S), each tile weighted by 1/sqrt(truth + 1) so
    sparse tiles count as much as dense ones."""
    weight = 1.0 / np.sqrt(truth + 1.0)
    coefficients, *_ = np.linalg.lstsq(head_features(integral) * weight[:, None], truth * weight, rcond=None)
    return coefficients


def image_counts(per_tile: np.ndarray, owners: np.ndarray, images: int) -> np.ndarray:
    return np.bincount(owners, weights=per_tile, minlength=images)


def calibrate_count_head(
    model: CrowdLite0, train: list[LoadedImage], validation: list[LoadedImage], tiles: str
) -> dict:
    """Fit on training tiles and compare with the plain integral on validation; `ship` says whether the head
    helps. The model itself is not changed: export applies the coefficients when the head is shipped."""
    s_train, t_train, _ = tile_integrals(model, train, tiles)
    coefficients = fit_coefficients(s_train, t_train)
    s_val, _, owners = tile_integrals(model, validation, tiles)
    truth = np.array([item.sample.count for item in validation], dtype=float)
    plain = image_counts(s_val, owners, len(validation))
    headed = image_counts(head_features(s_val) @ coefficients, owners, len(validation))
    report = {"coefficients": coefficients.tolist(), "parts": {}}
    better = []
    for part in sorted({item.part for item in validation}):
        chosen = np.array([item.part == part for item in validation])
        plain_mae, head_mae = mae(plain[chosen], truth[chosen]), mae(headed[chosen], truth[chosen])
        report["parts"][part] = {"integral_mae": plain_mae, "head_mae": head_mae}
        better.append(head_mae / max(plain_mae, 1e-9))
    report["ship"] = bool(np.mean(better) < 1.0)
    return report


def refit_onnx_count_head(
    model: Path, out: Path, images: list[LoadedImage], tiles: str = "auto"
) -> list[float]:
    """Refit the count head of an exported ONNX model on `images` (training images, never the hold-out)
    and write the model with the new (a, b, c) to `out`. Needed after a fine-tune that moved the raw density
    (training.finetune trains the map before the head): the old head calibrated the old map."""
    import onnx

    from crowdstream.engines.onnx_engine import OnnxEngine
    from crowdstream.training.onnx_weights import write_tuned

    if COEFFICIENTS not in {t.name for t in onnx.load(str(model)).graph.initializer}:
        raise ValueError(f"{model}: no count head ({COEFFICIENTS}) to refit")
    with tempfile.TemporaryDirectory() as folder:
        plain = write_tuned(model, Path(folder) / "plain.onnx", {COEFFICIENTS: np.array([1.0, 0.0, 0.0])})
        engine = OnnxEngine(plain)
        integral, truth, _ = tile_integrals(lambda inputs: engine.infer(inputs)[1], images, tiles)
    coefficients = fit_coefficients(integral, truth)
    write_tuned(model, out, {COEFFICIENTS: coefficients.astype(np.float32)})
    return coefficients.tolist()


GAIN_RANGE = (0.5, 2.0)
"""A camera's count gain is clipped to this: a factor outside it means a broken model, not a scale."""
MIN_GAIN_HEADS = 5
"""Fewer annotated heads than this over the training snapshots are too few to fit a gain on."""


def camera_gain(predicted: list[float], truth: list[int]) -> float | None:
    """The one factor that makes a fine-tuned model's counts of the camera's training snapshots add up to
    their annotated heads (sum of truth / sum of predictions), clipped to GAIN_RANGE; None when they hold
    fewer than MIN_GAIN_HEADS heads or the model counts nobody. One parameter, not the head's three: on five
    snapshots the full refit extrapolates (measured in docs/finetune.md), a gain only rescales."""
    heads, counted = float(sum(truth)), float(sum(predicted))
    if heads < MIN_GAIN_HEADS or counted <= 0:
        return None
    return float(np.clip(heads / counted, *GAIN_RANGE))


def rescale_count_head(model: Path, gain: float) -> list[float]:
    """Multiply the count head's (a, b, c) of an exported ONNX model by `gain`, in place; returns them."""
    import onnx
    from onnx import numpy_helper

    from crowdstream.training.onnx_weights import write_tuned

    by_name = {t.name: t for t in onnx.load(str(model)).graph.initializer}
    if COEFFICIENTS not in by_name:
        raise ValueError(f"{model}: no count head ({COEFFICIENTS}) to rescale")
    coefficients = numpy_helper.to_array(by_name[COEFFICIENTS]) * gain
    write_tuned(model, model, {COEFFICIENTS: coefficients})
    return coefficients.tolist()
