"""A camera's annotated snapshots as fine-tuning data: the folder the page writes (`<stem>.jpg` +
`<stem>.json` with `points` and optional `empty_regions`), read strictly, split into training and held-out
snapshots, and cut into augmented tiles mixed with replayed ShanghaiTech tiles.

Strict, unlike `crowdstream eval` (which drops stray points with a warning): a snapshot an operator just
annotated with a point outside the image is a broken file, and training on a silently changed annotation
would teach the model the wrong count, so it is a one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.frames import spread
from crowdstream.engines.spec import OUTPUT_SIZE
from crowdstream.training.annotations import AnnotationError, Sample, list_dataset, load_any
from crowdstream.training.datasets import PlannedTile, TileDataset, collate_tiles, crop_plan
from crowdstream.training.tile_render import TileRenderer

MIN_SNAPSHOTS = 2
"""Fewer cannot be fine-tuned: one snapshot is trained on, another judges the result."""


class DatasetError(CrowdstreamError):
    """A camera data set that cannot be fine-tuned on; one line naming the folder or file."""


def read_snapshots(root: Path) -> list[Sample]:
    """Every annotated snapshot of a camera folder, in natural order; any bad file is a DatasetError."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such data set folder")
    try:
        items = [path for path in list_dataset(root) if path.suffix == ".json"]
    except AnnotationError as exc:
        raise DatasetError(f"{root}: no annotated snapshots (expected <name>.jpg with <name>.json)") from exc
    if not items:
        raise DatasetError(f"{root}: no annotated snapshots (expected <name>.jpg with <name>.json)")
    samples = []
    for path in items:
        try:
            samples.append(load_any(path, strict=True))
        except AnnotationError as exc:
            raise DatasetError(str(exc)) from exc
    return samples


def split_snapshots(samples: list[Sample], holdout: int | None) -> tuple[list[Sample], list[Sample]]:
    """(training, held-out): `holdout` snapshots spread evenly over the folder's order (default a fifth,
    at least one); at least one must be left to train on."""
    count = len(samples)
    if count < MIN_SNAPSHOTS:
        raise DatasetError(
            f"fine-tuning needs at least {MIN_SNAPSHOTS} annotated snapshots, one to train on and one to judge "
            f"the result by: {count} found"
        )
    holdout = max(1, round(count / 5)) if holdout is None else holdout
    if holdout < 1 or holdout >= count:
        raise DatasetError(
            f"need at least one snapshot to hold out and one to train on: {count} snapshot(s), holdout {holdout}"
        )
    chosen = set(spread(list(range(count)), holdout)) if holdout > 1 else {count - 1}
    return [s for i, s in enumerate(samples) if i not in chosen], [
        s for i, s in enumerate(samples) if i in chosen
    ]


def empty_mask(regions: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """(56, 56) float32: 1 where the output pixel's centre lies in a "nobody here" box, for a crop box
    (y0, x0, h, w) of the frame."""
    y0, x0, ch, cw = box
    centres = np.arange(OUTPUT_SIZE, dtype=np.float32) + 0.5
    xs, ys = x0 + centres * cw / OUTPUT_SIZE, y0 + centres * ch / OUTPUT_SIZE
    mask = np.zeros((OUTPUT_SIZE, OUTPUT_SIZE), np.float32)
    for rx0, ry0, rx1, ry1 in regions:
        rows, cols = (ys >= ry0) & (ys < ry1), (xs >= rx0) & (xs < rx1)
        mask[np.ix_(rows, cols)] = 1.0
    return mask


class SnapshotTiles(TileDataset):
    """Tiles of the camera's snapshots. The density slot of a tile carries its "nobody here" mask (the
    point loss needs no density map), so flips mirror it with the tile; with probability `empty_share` a
    tile is cut from inside a marked box, and a synthetic texture is "nobody here" all over."""

    empty_share = 0.2

    def sample(self, source: int, rng: np.random.Generator) -> PlannedTile:
        item = self.images[source]
        regions = item.sample.empty_regions
        if len(regions) and rng.random() < self.empty_share:
            box = _inside(regions[rng.integers(len(regions))], rng)
            if box is not None:
                tile = crop_plan(source, item, *box)
                return PlannedTile(tile.plan, tile.points, empty_mask(regions, box))
        tile = super().sample(source, rng)
        if tile.plan.source >= len(self.images):
            return PlannedTile(tile.plan, tile.points, np.ones((OUTPUT_SIZE, OUTPUT_SIZE), np.float32))
        return PlannedTile(tile.plan, tile.points, empty_mask(regions, tile.plan.box))


def _inside(region: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int, int] | None:
    """A random square-ish crop inside a "nobody here" box, at least 16 pixels a side."""
    x0, y0, x1, y1 = (int(v) for v in region)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    side = int(rng.integers(16, min(x1 - x0, y1 - y0) + 1))
    return int(rng.integers(y0, y1 - side + 1)), int(rng.integers(x0, x1 - side + 1)), side, side


@dataclass
class MixedTiles(Dataset):
    """Camera tiles with a share of replayed training-data tiles, so the model keeps what it knew; an endless
    stream (any index is a tile), since a fine-tune runs for a time budget, not for epochs. Each set renders
    its own plans (training.tile_render) on the CPU.

    Replayed tiles are anchored to the base model's answers, the people-free ones among them too (the base
    model's count on a texture, right or wrong); `zero_replayed_negatives` marks those "nobody here" all
    over instead, for a fine-tune whose point is to bring such counts down."""

    camera: SnapshotTiles
    replay: TileDataset | None
    replay_share: float
    seed: int
    zero_replayed_negatives: bool = False

    def __post_init__(self) -> None:
        self.renderers = {False: TileRenderer(self.camera.sources)}
        if self.replay is not None:
            self.renderers[True] = TileRenderer(self.replay.sources)

    def is_replay(self, index: int) -> bool:
        """Whether tile `index` is a replayed training-data tile (fixed by the seed and the index)."""
        rng = np.random.default_rng((self.seed, 11, index))
        return self.replay is not None and bool(rng.random() < self.replay_share)

    def __getitem__(self, index: int) -> PlannedTile:
        if self.is_replay(index):
            tile = self.replay[index]
            mask = np.full((OUTPUT_SIZE, OUTPUT_SIZE), float(self._zeroed(tile)), np.float32)
            return replace(tile, density=mask)
        return self.camera[index]

    def _zeroed(self, tile: PlannedTile) -> bool:
        """Whether a replayed tile is trained towards zero instead of anchored to the base model."""
        return self.zero_replayed_negatives and tile.negative

    def batch(self, first: int, size: int) -> dict[str, torch.Tensor]:
        """Tiles first..first+size-1: `images` (N, 3, 224, 224) RGB 0..255, the heads (collate_tiles), the
        "nobody here" masks as `empty`, and `replay` saying which tiles are anchored to the base model's
        answers (replayed training tiles, less the people-free ones when those are trained towards zero)."""
        indices = range(first, first + size)
        tiles = [self[index] for index in indices]
        replayed = [self.is_replay(index) for index in indices]
        out = collate_tiles(tiles)
        plans = out.pop("plans")
        out["images"] = torch.cat(
            [self.renderers[r].render([plan]) for plan, r in zip(plans, replayed, strict=True)]
        )
        out["empty"] = out.pop("density")
        out["replay"] = torch.tensor(
            [r and not self._zeroed(t) for r, t in zip(replayed, tiles, strict=True)]
        )
        return out
