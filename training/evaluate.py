"""Score a counter on a ShanghaiTech- or NWPU-layout folder: MAE, RMSE, NAE, GAME(0..3), errors by
crowd-size bucket, speed. Uses the same engines and tiling as the stream, so the numbers are the product's."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engines.counting import count_frames
from engines.engine import Engine
from training.annotations import Sample, iter_dataset, load_any, split_items
from training.metrics import bias, errors_by_bucket, game_error, mae, nae, rmse

GAME_LEVELS = (0, 1, 2, 3)


@dataclass
class Evaluation:
    """Per-image results and the summary a report or `--json` prints."""

    names: list[str] = field(default_factory=list)
    truth: list[float] = field(default_factory=list)
    predicted: list[float] = field(default_factory=list)
    game: dict[int, list[float]] = field(default_factory=lambda: {level: [] for level in GAME_LEVELS})
    seconds: float = 0.0

    def add(self, sample: Sample, count: float, density: np.ndarray) -> None:
        self.names.append(sample.image_path.name)
        self.truth.append(float(sample.count))
        self.predicted.append(count)
        for level in GAME_LEVELS:
            self.game[level].append(game_error(density, sample.points, sample.height, sample.width, level))

    def summary(self) -> dict:
        images = len(self.truth)
        return {
            "images": images,
            "mae": mae(self.predicted, self.truth),
            "rmse": rmse(self.predicted, self.truth),
            "nae": nae(self.predicted, self.truth),
            "bias": bias(self.predicted, self.truth),
            "game": {str(level): float(np.mean(v)) if v else float("nan") for level, v in self.game.items()},
            "buckets": errors_by_bucket(self.predicted, self.truth),
            "seconds_per_image": self.seconds / images if images else float("nan"),
        }


def evaluate(
    engine: Engine,
    samples: list[Sample] | None = None,
    root: Path | None = None,
    tiles: str = "auto",
    limit: int | None = None,
    every: int | None = None,
    progress: bool = True,
) -> Evaluation:
    """Count every image (or every `every`-th, the held-out split) and compare with its annotation."""
    if samples is None:
        samples = (
            [load_any(p) for p in split_items(root, every)[1]]
            if every
            else list(islice(iter_dataset(root), limit))
        )
    samples = samples[:limit] if limit else samples
    result = Evaluation()
    for sample in tqdm(samples, desc="evaluating", unit="img", disable=not progress):
        image = sample.load_image()
        started = time.perf_counter()
        (frame,) = count_frames(engine, [image], tiles, scale=0.25)
        result.seconds += time.perf_counter() - started
        result.add(sample, frame.count, frame.density)
    return result
