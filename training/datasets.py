"""Training and validation data: ShanghaiTech parts held in memory, cut into tiles the way the stream cuts
frames (engines.preprocess), over a wide range of scales, with people-free tiles mixed in.

A sample is a 224×224 RGB uint8 tile (normalised on the training device, so loader processes only crop and
resize), the head points inside it in output-pixel coordinates (for the point loss) and, when the images
carry Gaussian density maps, the tile's density target (for the previous loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from engines.preprocess import plan_tiles, resize_density, resize_tile
from engines.spec import OUTPUT_SIZE, PIXEL_MEAN, PIXEL_STD
from training.annotations import Sample, load_any
from training.density import DensityConfig, density_map
from training.negatives import TextureBank, head_free_box


@dataclass
class LoadedImage:
    """One image in memory; `density` is its full-resolution Gaussian map, or None for point-only training."""

    sample: Sample
    image: np.ndarray
    density: np.ndarray | None
    part: str


def load_images(
    items: list, part: str, config: DensityConfig | None, limit: int | None = None
) -> list[LoadedImage]:
    """Read annotated images; `config=None` skips the density maps (the point loss does not need them)."""
    loaded = []
    for path in tqdm(items[:limit], desc=f"loading {part}", unit="img", leave=False):
        sample = load_any(path)
        density = None if config is None else density_map(sample.points, sample.height, sample.width, config)
        loaded.append(LoadedImage(sample, sample.load_image(), density, part))
    return loaded


@dataclass(frozen=True)
class Augment:
    """Augmentation strengths.

    `scale`: crop side relative to the stream's `auto` tile, drawn log-uniformly; 0.25 zooms in 4× (heads
    several times larger than any in the data: people close to the lens), 2 zooms out 2× (small heads).
    `aspect`: crop aspect jitter. `negatives`: share of people-free tiles (head-free regions of the training
    images, else synthetic textures). `blur`: chance of a defocus blur."""

    flip: bool = True
    scale: tuple[float, float] = (0.75, 1.33)
    aspect: tuple[float, float] = (1.0, 1.0)
    colour: float = 0.2
    greyscale: float = 0.1
    negatives: float = 0.0
    blur: float = 0.0


@dataclass
class TileSample:
    tile: np.ndarray  # (224, 224, 3) BGR uint8
    points: np.ndarray  # (P, 2) float32 (x, y) in output pixels
    density: np.ndarray | None  # (56, 56) float32 or None


class TileDataset(Dataset):
    """Random tiles at random scales. Each part contributes equally per epoch (balanced dense/sparse)."""

    def __init__(
        self,
        images: list[LoadedImage],
        tiles: str,
        samples_per_part: int,
        augment: Augment,
        seed: int,
        textures: TextureBank | None = None,
    ):
        self.groups: dict[str, list[LoadedImage]] = {}
        for image in images:
            self.groups.setdefault(image.part, []).append(image)
        self.parts = sorted(self.groups)
        self.tiles = tiles
        self.samples_per_part = samples_per_part
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.textures = textures if textures is not None or not augment.negatives else TextureBank(seed)

    def __len__(self) -> int:
        return self.samples_per_part * len(self.parts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        group = self.groups[self.parts[index % len(self.parts)]]
        item = group[rng.integers(len(group))]
        sample = self.sample(item, rng)
        if self.augment.flip and rng.random() < 0.5:
            sample = flip(sample)
        tile = self._photometric(sample.tile, rng)
        rgb = torch.from_numpy(np.ascontiguousarray(tile[..., ::-1].transpose(2, 0, 1)))
        density = torch.empty(0) if sample.density is None else torch.from_numpy(sample.density[None].copy())
        return rgb, torch.from_numpy(sample.points), density

    def sample(self, item: LoadedImage, rng: np.random.Generator) -> TileSample:
        """A crop of `item` at a random scale, or (with probability `negatives`) a people-free tile."""
        box = self.crop_box(item, rng)
        return self._texture(item, rng) if box is None else crop_sample(item, *box)

    def crop_box(self, item: LoadedImage, rng: np.random.Generator) -> tuple[int, int, int, int] | None:
        """A random (y0, x0, h, w) crop at a random scale: with probability `negatives` a head-free one,
        None when the image has no head-free area (a synthetic texture stands in)."""
        h, w = item.image.shape[:2]
        grid = plan_tiles(h, w, self.tiles)
        scale = np.exp(rng.uniform(*np.log(self.augment.scale)))
        aspect = np.exp(rng.uniform(*np.log(self.augment.aspect)))
        ch = int(np.clip(round(h / grid.rows * scale * np.sqrt(aspect)), 16, h))
        cw = int(np.clip(round(w / grid.cols * scale / np.sqrt(aspect)), 16, w))
        if rng.random() < self.augment.negatives:
            return head_free_box(item.sample.points, h, w, ch, cw, rng)
        return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw

    def _texture(self, item: LoadedImage, rng: np.random.Generator) -> TileSample:
        density = None if item.density is None else np.zeros((OUTPUT_SIZE, OUTPUT_SIZE), np.float32)
        return TileSample(self.textures.draw(rng), np.zeros((0, 2), np.float32), density)

    def _photometric(self, tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        strength = self.augment.colour
        if rng.random() < self.augment.greyscale:
            tile = cv2.cvtColor(cv2.cvtColor(tile, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        if rng.random() < self.augment.blur:
            tile = cv2.GaussianBlur(tile, (0, 0), rng.uniform(0.5, 1.5))
        if strength > 0:
            gain = rng.uniform(1 - strength, 1 + strength, size=3) * rng.uniform(1 - strength, 1 + strength)
            offset = rng.uniform(-strength, strength) * 64
            tile = np.clip(tile.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
        return tile


def crop_sample(item: LoadedImage, y0: int, x0: int, ch: int, cw: int) -> TileSample:
    """The crop resized to the model input, its heads in output pixels and (if any) its density target."""
    tile = resize_tile(item.image[y0 : y0 + ch, x0 : x0 + cw])
    points = item.sample.points
    inside = (points[:, 0] >= x0) & (points[:, 0] < x0 + cw) & (points[:, 1] >= y0) & (points[:, 1] < y0 + ch)
    scale = np.array([OUTPUT_SIZE / cw, OUTPUT_SIZE / ch], dtype=np.float32)
    local = ((points[inside] - np.array([x0, y0], dtype=np.float32)) * scale).astype(np.float32)
    density = None
    if item.density is not None:
        density = resize_density(item.density[y0 : y0 + ch, x0 : x0 + cw], OUTPUT_SIZE, OUTPUT_SIZE)
    return TileSample(tile, local.reshape(-1, 2), density)


def flip(sample: TileSample) -> TileSample:
    """Mirror left-right: pixels, head x coordinates and the density target."""
    points = sample.points.copy()
    points[:, 0] = OUTPUT_SIZE - points[:, 0]
    density = None if sample.density is None else sample.density[:, ::-1].copy()
    return TileSample(sample.tile[:, ::-1].copy(), points, density)


def collate_tiles(batch: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack tiles; pad the head lists to the longest with a validity mask (the point loss is batched)."""
    images = torch.stack([b[0] for b in batch])
    longest = max(len(b[1]) for b in batch)
    points = torch.zeros(len(batch), longest, 2)
    valid = torch.zeros(len(batch), longest, dtype=torch.bool)
    for row, (_, heads, _) in enumerate(batch):
        points[row, : len(heads)] = heads
        valid[row, : len(heads)] = True
    out = {"images": images, "points": points, "valid": valid}
    if batch[0][2].numel():
        out["density"] = torch.stack([b[2] for b in batch])
    return out


_MEAN = torch.from_numpy(PIXEL_MEAN).view(1, 3, 1, 1)
_STD = torch.from_numpy(PIXEL_STD).view(1, 3, 1, 1)


def normalise_rgb(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) RGB uint8 on any device → float32 standardised exactly like engines.preprocess.normalise."""
    mean, std = _MEAN.to(images.device), _STD.to(images.device)
    return (images.float() - mean) / std
