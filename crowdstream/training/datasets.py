"""Training and validation data: ShanghaiTech parts held in memory, cut into tiles the way the stream cuts
frames (engines.preprocess), over a wide range of scales, with people-free tiles mixed in.

A sample is a planned tile (training.tile_render: which image, which box, which flip, colour and blur; the
pixels are made on the training device), the head points inside it in output-pixel coordinates (for the
point loss) and, when the images carry Gaussian density maps, the tile's density target (for the previous
loss).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from crowdstream.engines.preprocess import plan_tiles, resize_density
from crowdstream.engines.spec import OUTPUT_SIZE, PIXEL_MEAN, PIXEL_STD
from crowdstream.training.annotations import Sample, load_any
from crowdstream.training.density import DensityConfig, density_map
from crowdstream.training.negatives import TextureBank, head_free_box
from crowdstream.training.tile_render import TilePlan


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
class PlannedTile:
    """A training tile before its pixels exist: the plan, the heads inside it in output-pixel coordinates
    (for the point loss), for the previous loss its (56, 56) density target (else None), and whether it was
    drawn as a people-free tile (a head-free crop or a texture), which a fine-tune may train towards zero."""

    plan: TilePlan
    points: np.ndarray
    density: np.ndarray | None
    negative: bool = False


class TileDataset(Dataset):
    """Random tiles at random scales, as plans for a TileRenderer over `sources` (the images, then the
    synthetic textures). Each part contributes equally per epoch (balanced dense/sparse).

    `heads_power`: within a part, an image with heads is drawn in proportion to (its annotated heads + 1) to
    this power; 0 draws each image equally, 1 draws a photograph of 999 people ten times as often as one of 99.
    Images without heads keep their equal share (`heads_chances`).
    A fine-tune uses it to hold its densest replayed photographs, whose counts drift first, closer, and to
    train its dense camera snapshots more often."""

    def __init__(
        self,
        images: list[LoadedImage],
        tiles: str,
        samples_per_part: int,
        augment: Augment,
        seed: int,
        textures: TextureBank | None = None,
        heads_power: float = 0.0,
    ):
        self.images = images
        self.groups: dict[str, list[int]] = {}
        for index, image in enumerate(images):
            self.groups.setdefault(image.part, []).append(index)
        self.parts = sorted(self.groups)
        self.draw_chances = (
            None
            if heads_power == 0
            else {
                part: heads_chances([images[index] for index in group], heads_power)
                for part, group in self.groups.items()
            }
        )
        self.tiles = tiles
        self.samples_per_part = samples_per_part
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.textures = textures if textures is not None or not augment.negatives else TextureBank(seed)
        texture_images = self.textures.textures if self.textures is not None else []
        self.sources = [image.image for image in images] + texture_images

    def __len__(self) -> int:
        return self.samples_per_part * len(self.parts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> PlannedTile:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        part = self.parts[index % len(self.parts)]
        group = self.groups[part]
        drawn = (
            rng.integers(len(group))
            if self.draw_chances is None
            else rng.choice(len(group), p=self.draw_chances[part])
        )
        tile = self.sample(group[drawn], rng)
        if self.augment.flip and rng.random() < 0.5:
            tile = flip(tile)
        return replace(tile, plan=self._photometric(tile.plan, rng))

    def sample(self, source: int, rng: np.random.Generator) -> PlannedTile:
        """A crop of image `source` at a random scale, or (with probability `negatives`) a people-free tile."""
        item = self.images[source]
        h, w = item.image.shape[:2]
        grid = plan_tiles(h, w, self.tiles)
        scale = np.exp(rng.uniform(*np.log(self.augment.scale)))
        aspect = np.exp(rng.uniform(*np.log(self.augment.aspect)))
        ch = int(np.clip(round(h / grid.rows * scale * np.sqrt(aspect)), 16, h))
        cw = int(np.clip(round(w / grid.cols * scale / np.sqrt(aspect)), 16, w))
        if rng.random() < self.augment.negatives:
            box = head_free_box(item.sample.points, h, w, ch, cw, rng)
            if box is None:
                return self._texture(item, rng)
            return replace(crop_plan(source, item, *box), negative=True)
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return crop_plan(source, item, y0, x0, ch, cw)

    def _texture(self, item: LoadedImage, rng: np.random.Generator) -> PlannedTile:
        density = None if item.density is None else np.zeros((OUTPUT_SIZE, OUTPUT_SIZE), np.float32)
        plan = self.textures.plan(rng, first_source=len(self.images))
        return PlannedTile(plan, np.zeros((0, 2), np.float32), density, negative=True)

    def _photometric(self, plan: TilePlan, rng: np.random.Generator) -> TilePlan:
        """Greyscale, defocus blur and colour gain/offset, drawn here and applied by the renderer."""
        strength = self.augment.colour
        grey = bool(rng.random() < self.augment.greyscale) or plan.grey
        blur = float(rng.uniform(0.5, 1.5)) if rng.random() < self.augment.blur else 0.0
        gain, offset = plan.gain, plan.offset
        if strength > 0:
            channel = rng.uniform(1 - strength, 1 + strength, size=3) * rng.uniform(
                1 - strength, 1 + strength
            )
            gain, offset = tuple(float(g) for g in channel), float(rng.uniform(-strength, strength) * 64)
        return replace(plan, grey=grey, blur=blur, gain=gain, offset=offset)


def heads_chances(images: list[LoadedImage], power: float) -> np.ndarray:
    """Each image's chance of being drawn: images without heads keep the share an equal draw gives them (the
    people-free pictures a fine-tune learns zero from), the rest share theirs in proportion to
    (annotated heads + 1) ** power."""
    heads = np.array([len(image.sample.points) for image in images], dtype=np.float64)
    weights = np.where(heads > 0, (heads + 1.0) ** power, 0.0)
    chances = np.where(heads > 0, 0.0, 1.0 / len(images))
    if weights.sum() > 0:
        chances += weights / weights.sum() * (heads > 0).mean()
    return chances


def crop_plan(source: int, item: LoadedImage, y0: int, x0: int, ch: int, cw: int) -> PlannedTile:
    """The crop of image `source` as a plan, its heads in output pixels and (if any) its density target."""
    points = item.sample.points
    inside = (points[:, 0] >= x0) & (points[:, 0] < x0 + cw) & (points[:, 1] >= y0) & (points[:, 1] < y0 + ch)
    scale = np.array([OUTPUT_SIZE / cw, OUTPUT_SIZE / ch], dtype=np.float32)
    local = ((points[inside] - np.array([x0, y0], dtype=np.float32)) * scale).astype(np.float32)
    density = None
    if item.density is not None:
        density = resize_density(item.density[y0 : y0 + ch, x0 : x0 + cw], OUTPUT_SIZE, OUTPUT_SIZE)
    return PlannedTile(TilePlan(source, (y0, x0, ch, cw)), local.reshape(-1, 2), density)


def flip(tile: PlannedTile) -> PlannedTile:
    """Mirror left-right: the plan, the head x coordinates and the density target."""
    points = tile.points.copy()
    points[:, 0] = OUTPUT_SIZE - points[:, 0]
    density = None if tile.density is None else tile.density[:, ::-1].copy()
    return replace(tile, plan=replace(tile.plan, flip=not tile.plan.flip), points=points, density=density)


def collate_tiles(batch: list[PlannedTile]) -> dict:
    """The plans of a batch; heads padded to the longest with a validity mask (one tensor for the batch)."""
    longest = max(len(tile.points) for tile in batch)
    points = torch.zeros(len(batch), longest, 2)
    valid = torch.zeros(len(batch), longest, dtype=torch.bool)
    for row, tile in enumerate(batch):
        points[row, : len(tile.points)] = torch.from_numpy(tile.points)
        valid[row, : len(tile.points)] = True
    out = {"plans": [tile.plan for tile in batch], "points": points, "valid": valid}
    if batch[0].density is not None:
        out["density"] = torch.stack([torch.from_numpy(tile.density[None].copy()) for tile in batch])
    return out


_MEAN = torch.from_numpy(PIXEL_MEAN).view(1, 3, 1, 1)
_STD = torch.from_numpy(PIXEL_STD).view(1, 3, 1, 1)


def normalise_rgb(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) RGB in 0..255 (uint8 or float) on any device → float32 standardised exactly like
    engines.preprocess.normalise."""
    mean, std = _MEAN.to(images.device), _STD.to(images.device)
    return (images.float() - mean) / std
