"""Training and validation data: ShanghaiTech parts held in memory, cut into tiles exactly as the stream
cuts frames (engines.preprocess), with geometric and photometric augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from engines.preprocess import normalise, plan_tiles, resize_density, resize_tile
from engines.spec import OUTPUT_SIZE
from training.annotations import Sample, load_any
from training.density import DensityConfig, density_map


@dataclass
class LoadedImage:
    """One image in memory with its ground-truth density map at full resolution."""

    sample: Sample
    image: np.ndarray
    density: np.ndarray
    part: str


def load_images(
    items: list[Path], part: str, config: DensityConfig, limit: int | None = None
) -> list[LoadedImage]:
    loaded = []
    for path in tqdm(items[:limit], desc=f"loading {part}", unit="img", leave=False):
        sample = load_any(path)
        loaded.append(
            LoadedImage(
                sample,
                sample.load_image(),
                density_map(sample.points, sample.height, sample.width, config),
                part,
            )
        )
    return loaded


@dataclass(frozen=True)
class Augment:
    """Augmentation strengths; `scale` jitters the crop size around the stream's tile size."""

    flip: bool = True
    scale: tuple[float, float] = (0.75, 1.33)
    colour: float = 0.2
    greyscale: float = 0.1


class TileDataset(Dataset):
    """Random stream-sized tiles. Each part contributes equally per epoch (balanced dense/sparse sampling)."""

    def __init__(
        self, images: list[LoadedImage], tiles: str, samples_per_part: int, augment: Augment, seed: int
    ):
        self.groups = {}
        for image in images:
            self.groups.setdefault(image.part, []).append(image)
        self.parts = sorted(self.groups)
        self.tiles = tiles
        self.samples_per_part = samples_per_part
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.samples_per_part * len(self.parts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        group = self.groups[self.parts[index % len(self.parts)]]
        item = group[rng.integers(len(group))]
        tile, target = self._random_tile(item, rng)
        return torch.from_numpy(normalise(tile[None])[0]), torch.from_numpy(target[None])

    def _random_tile(self, item: LoadedImage, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        h, w = item.image.shape[:2]
        grid = plan_tiles(h, w, self.tiles)
        th, tw = h / grid.rows, w / grid.cols
        scale = np.exp(rng.uniform(*np.log(self.augment.scale)))
        ch, cw = max(8, min(h, round(th * scale))), max(8, min(w, round(tw * scale)))
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        tile = resize_tile(item.image[y0 : y0 + ch, x0 : x0 + cw])
        target = resize_density(item.density[y0 : y0 + ch, x0 : x0 + cw], OUTPUT_SIZE, OUTPUT_SIZE)
        if self.augment.flip and rng.random() < 0.5:
            tile, target = tile[:, ::-1], target[:, ::-1]
        tile = self._photometric(tile, rng)
        return np.ascontiguousarray(tile), np.ascontiguousarray(target)

    def _photometric(self, tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        strength = self.augment.colour
        if rng.random() < self.augment.greyscale:
            tile = cv2.cvtColor(cv2.cvtColor(tile, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        if strength > 0:
            gain = rng.uniform(1 - strength, 1 + strength, size=3) * rng.uniform(1 - strength, 1 + strength)
            offset = rng.uniform(-strength, strength) * 64
            tile = np.clip(tile.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
        return tile
