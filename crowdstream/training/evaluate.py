"""Score a counter on annotated images: MAE, RMSE, NAE (all and sparse), GAME(0..3), bias and bias % by
crowd-size bucket, a bootstrap interval of the MAE, speed. Uses the same engines and tiling as the stream,
so the numbers are the product's.

Everything scored is a `Scene` (an image and its head points), so data set images, zoomed crops and
frames of the demo clip go through one loop; `variants` score transformed copies of each image (zoomed
crops) in the same pass, so each image is read from disk once."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crowdstream.engines.counting import count_frames
from crowdstream.engines.spec import Engine
from crowdstream.engines.uncertainty import Uncertainty, frame_uncertainty
from crowdstream.training.annotations import Sample, iter_dataset, load_any, split_items
from crowdstream.training.metrics import (
    bias,
    bias_percent,
    errors_by_bucket,
    flag_rates,
    game_error,
    mae,
    mae_delta_interval,
    mae_interval,
    nae,
    rmse,
    sparse_nae,
)

GAME_LEVELS = (0, 1, 2, 3)


@dataclass
class Scene:
    """One image to score and its annotated head points, (N, 2) float (x, y) pixels inside the image."""

    name: str
    image: np.ndarray
    points: np.ndarray

    @property
    def count(self) -> int:
        return len(self.points)

    @classmethod
    def from_sample(cls, sample: Sample) -> Scene:
        return cls(sample.image_path.name, sample.load_image(), sample.points)


Variant = Callable[[Scene], Scene]
"""A transformed copy of a scene (a zoomed crop, say) with its own annotation."""


@dataclass
class Evaluation:
    """Per-image results and the summary a report or `--json` prints."""

    names: list[str] = field(default_factory=list)
    truth: list[float] = field(default_factory=list)
    predicted: list[float] = field(default_factory=list)
    game: dict[int, list[float]] = field(default_factory=lambda: {level: [] for level in GAME_LEVELS})
    seconds: float = 0.0
    inputs: int = 0
    uncertainty: list[Uncertainty] = field(default_factory=list)
    """Each image's self-check, when the evaluation asked for it (else empty)."""

    def add(
        self,
        scene: Scene,
        count: float,
        density: np.ndarray,
        inputs: int = 0,
        uncertainty: Uncertainty | None = None,
    ) -> None:
        height, width = scene.image.shape[:2]
        self.inputs += inputs
        if uncertainty is not None:
            self.uncertainty.append(uncertainty)
        self.names.append(scene.name)
        self.truth.append(float(scene.count))
        self.predicted.append(count)
        for level in GAME_LEVELS:
            self.game[level].append(game_error(density, scene.points, height, width, level))

    def extend(self, other: Evaluation) -> None:
        """Add another evaluation's images (to summarise several groups together)."""
        self.names += other.names
        self.truth += other.truth
        self.predicted += other.predicted
        for level in GAME_LEVELS:
            self.game[level] += other.game[level]
        self.seconds += other.seconds
        self.inputs += other.inputs
        self.uncertainty += other.uncertainty

    def summary(self) -> dict:
        images = len(self.truth)
        low, high = mae_interval(self.predicted, self.truth)
        return {
            "images": images,
            "mae": mae(self.predicted, self.truth),
            "mae_ci95": [low, high],
            "rmse": rmse(self.predicted, self.truth),
            "nae": nae(self.predicted, self.truth),
            "nae_0_50": sparse_nae(self.predicted, self.truth),
            "bias": bias(self.predicted, self.truth),
            "bias_pct": bias_percent(self.predicted, self.truth),
            "truth_mean": float(np.mean(self.truth)) if images else float("nan"),
            "predicted_mean": float(np.mean(self.predicted)) if images else float("nan"),
            "game": {str(level): float(np.mean(v)) if v else float("nan") for level, v in self.game.items()},
            "buckets": errors_by_bucket(self.predicted, self.truth),
            "seconds_per_image": self.seconds / images if images else float("nan"),
            "inputs_per_image": self.inputs / images if images else float("nan"),
            **({"uncertainty": self.flag_quality()} if self.uncertainty else {}),
        }

    def flag_quality(self) -> dict:
        """How well the `uncertain` flags pick out the wrong counts (training.metrics.flag_rates)."""
        return flag_rates(self.predicted, self.truth, [u.uncertain for u in self.uncertainty])

    def per_image(self) -> list[dict]:
        """Every image's name, truth and count, with its self-check when there is one."""
        rows = []
        for index, (name, truth, predicted) in enumerate(
            zip(self.names, self.truth, self.predicted, strict=True)
        ):
            judged = self.uncertainty[index].as_dict() if self.uncertainty else {}
            rows.append({"name": name, "truth": truth, "predicted": predicted, **judged})
        return rows


def versus(evaluation: Evaluation, baseline: Evaluation, model: str) -> dict:
    """How `evaluation` compares with `baseline` on the same images: both MAEs, the difference with its
    paired bootstrap interval, and how many images got better or worse."""
    if baseline.names != evaluation.names:
        raise ValueError("a comparison needs both models scored on the same images")
    errors = np.abs(np.subtract(evaluation.predicted, evaluation.truth))
    baseline_errors = np.abs(np.subtract(baseline.predicted, baseline.truth))
    low, high = mae_delta_interval(evaluation.predicted, baseline.predicted, evaluation.truth)
    return {
        "model": model,
        "mae": mae(baseline.predicted, baseline.truth),
        "bias_pct": bias_percent(baseline.predicted, baseline.truth),
        "mae_delta": float(errors.mean() - baseline_errors.mean()),
        "mae_delta_ci95": [low, high],
        "images_better": int((errors < baseline_errors).sum()),
        "images_worse": int((errors > baseline_errors).sum()),
    }


def dataset_samples(root: Path, limit: int | None = None, every: int | None = None) -> list[Sample]:
    """The annotated images of a data set folder: all of them, or only the hold-out (every `every`-th
    image, see `split_items`), at most `limit`."""
    if every:
        return [load_any(path) for path in split_items(root, every)[1][:limit]]
    return list(islice(iter_dataset(root), limit))


def evaluate_variants(
    engine: Engine,
    scenes: Iterable[Scene],
    variants: Mapping[str, Variant],
    tiles: str = "auto",
    progress: bool = True,
    total: int | None = None,
    judged: Collection[str] = (),
) -> dict[str, Evaluation]:
    """Count every scene's variants and compare each with its annotation; one Evaluation per variant.
    Variants named in `judged` also get each image's self-check (engines.uncertainty: one more pass)."""
    results = {name: Evaluation() for name in variants}
    for scene in tqdm(scenes, desc="evaluating", unit="img", total=total, disable=not progress):
        for name, variant in variants.items():
            changed = variant(scene)
            started = time.perf_counter()
            (frame,) = count_frames(engine, [changed.image], tiles, scale=0.25)
            results[name].seconds += time.perf_counter() - started
            doubt = frame_uncertainty(engine, changed.image, frame) if name in judged else None
            results[name].add(changed, frame.count, frame.density, frame.inputs, doubt)
    return results


def evaluate(
    engine: Engine,
    samples: list[Sample] | None = None,
    root: Path | None = None,
    tiles: str = "auto",
    limit: int | None = None,
    every: int | None = None,
    progress: bool = True,
) -> Evaluation:
    """Count every image of `samples` (or of the folder `root`, or its hold-out: every `every`-th image)
    and compare with its annotation."""
    if samples is None:
        samples = dataset_samples(root, limit, every)
    samples = samples[:limit] if limit else samples
    scenes = (Scene.from_sample(sample) for sample in samples)
    return evaluate_scenes(engine, scenes, tiles, progress, len(samples))


def evaluate_scenes(
    engine: Engine,
    scenes: Iterable[Scene],
    tiles: str = "auto",
    progress: bool = True,
    total: int | None = None,
) -> Evaluation:
    """Count every scene as it is and compare with its annotation."""
    return evaluate_variants(engine, scenes, {"": unchanged}, tiles, progress, total)[""]


def unchanged(scene: Scene) -> Scene:
    """The identity variant: the scene as it is."""
    return scene
