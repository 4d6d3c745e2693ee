"""Camera-like image sets with exact head points, in the snapshot format (`<stem>.jpg` + `<stem>.json`) that
`crowdstream finetune` trains on and `crowdstream eval` / `check cameras` read:

- `elevated`: synthetic elevated views (training.elevated_scenes) degraded like a real camera;
- `degraded`: ShanghaiTech images seen through a camera (training.camera_look);
- `families`: people-free textures of whole families (training.texture_families);
- `sharp`: ShanghaiTech images as they are, so a fine-tune also learns from their annotations.

`split="train"` draws from training-split images and TRAIN_FAMILIES; `split="holdout"` from the every-5th
hold-out images only and CHECK_FAMILIES, with other seeds: the checks never see a person, a background or a
texture family that training saw.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from crowdstream.engines.frames import holdout_split, shanghaitech_part, spread
from crowdstream.training.annotations import Sample, list_dataset, load_any
from crowdstream.training.camera_demo import write_snapshot
from crowdstream.training.camera_look import (
    CHECK_LOOK,
    NIGHT_LOOK,
    CameraLook,
    degrade,
    mask_outside_region,
    resize_to_width,
)
from crowdstream.training.elevated_scenes import cutouts, elevated_scene
from crowdstream.training.texture_families import CHECK_FAMILIES, TRAIN_FAMILIES

Split = Literal["train", "holdout"]
SEEDS = {"train": 20261206, "holdout": 6122026}
TEXTURE_SIDE = 512


def split_samples(data_root: Path, part: str, split: Split, limit: int | None = None) -> list[Sample]:
    """A part's annotated images of one split (natural order), `limit` of them spread over it."""
    train, holdout = holdout_split(list_dataset(shanghaitech_part(part, data_root)))
    chosen = train if split == "train" else holdout
    return [load_any(path) for path in (spread(chosen, limit) if limit else chosen)]


def elevated_views(
    data_root: Path, split: Split, count: int, masked: float = 0.0
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """`count` synthetic elevated views (stem, BGR, heads): people from the split's part B images, outdoor
    backgrounds from its part A and B images, each view seen through a random camera; a `masked` share of
    them painted black outside a counting region (camera_look.mask_outside_region), drawn from a stream of
    their own so the views themselves do not change with the share."""
    sources = [(s, s.load_image()) for s in split_samples(data_root, "B", split)]
    backgrounds = sources + [(s, s.load_image()) for s in split_samples(data_root, "A", split, 40)]
    people = [person for sample, image in sources for person in cutouts(sample, image)]
    rng = np.random.default_rng((SEEDS[split], 1))
    look = CameraLook(width=(480, 800))
    for index in range(count):
        frame, heads = elevated_scene(rng, people, backgrounds)
        frame, scale = degrade(frame, rng, look if split == "train" else CHECK_LOOK)
        heads = heads * scale
        mask_rng = np.random.default_rng((SEEDS[split], 4, index))
        if mask_rng.random() < masked:
            frame, heads = mask_outside_region(frame, heads, mask_rng)
        yield f"elevated-{index:04d}", frame, heads


def degraded_images(
    data_root: Path, split: Split, per_part: int | None
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """The split's images seen through a camera: random looks for training, the public check recipe (640 px
    wide, JPEG 30, blur σ≈1) for the hold-out."""
    for part in ("A", "B"):
        for sample in split_samples(data_root, part, split, per_part):
            rng = np.random.default_rng(
                (SEEDS[split], 2, zlib.crc32(sample.image_path.name.encode()), ord(part))
            )
            frame, scale = degrade(sample.load_image(), rng, CameraLook() if split == "train" else CHECK_LOOK)
            yield f"degraded-{part}-{sample.image_path.stem}", frame, sample.points * scale


def night_images(
    data_root: Path, per_part: int | None = None
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """The hold-out part B street scenes as an infrared camera records them at night (NIGHT_LOOK): a check
    only, with a draw of its own per image."""
    for sample in split_samples(data_root, "B", "holdout", per_part):
        rng = np.random.default_rng((SEEDS["holdout"], 5, zlib.crc32(sample.image_path.name.encode())))
        frame, scale = degrade(sample.load_image(), rng, NIGHT_LOOK)
        yield f"night-B-{sample.image_path.stem}", frame, sample.points * scale


def sharp_images(
    data_root: Path, split: Split, per_part: int | None
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """The split's images untouched with their heads: the model under-counts the training split's dense part B
    images as much as the hold-out's (MAE 14.1 over all 400 against 14.7 on the hold-out), so it underfits
    them, and a fine-tune held only to the shipped model's answers keeps that."""
    for part in ("A", "B"):
        for sample in split_samples(data_root, part, split, per_part):
            yield f"sharp-{part}-{sample.image_path.stem}", sample.load_image(), sample.points


def family_textures(split: Split, variants: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """`variants` people-free textures of each family of the split, half seen at 2× zoom, through a camera."""
    families = TRAIN_FAMILIES if split == "train" else CHECK_FAMILIES
    for name, paint in families.items():
        for variant in range(variants):
            rng = np.random.default_rng((SEEDS[split], 3, zlib.crc32(name.encode()), variant))
            side = TEXTURE_SIDE // 2 if variant % 2 else TEXTURE_SIDE
            texture, _ = resize_to_width(paint(rng, side), TEXTURE_SIDE)
            frame, _ = degrade(texture, rng, CameraLook(width=(TEXTURE_SIDE, TEXTURE_SIDE)))
            yield f"family-{name}-{variant:02d}", frame, np.zeros((0, 2), np.float32)


def write_set(folder: Path, items: Iterator[tuple[str, np.ndarray, np.ndarray]], kind: str) -> int:
    """Write each (stem, image, heads) as a snapshot; people-free ones get a whole-image "nobody here" box."""
    written = 0
    for stem, image, heads in items:
        h, w = image.shape[:2]
        empty = [] if len(heads) else [[0, 0, w, h]]
        write_snapshot(folder, stem, image, heads, empty_regions=empty, source=kind)
        written += 1
    return written


def write_camera_sets(
    folder: Path, data_root: Path, split: Split, elevated: int, degraded_per_part: int | None, variants: int
) -> dict[str, int]:
    """Write the three sets of a split into `folder/<set>/`; returns how many snapshots each holds."""
    return {
        "elevated": write_set(folder / "elevated", elevated_views(data_root, split, elevated), "elevated"),
        "degraded": write_set(
            folder / "degraded", degraded_images(data_root, split, degraded_per_part), "degraded"
        ),
        "families": write_set(folder / "families", family_textures(split, variants), "families"),
    }
