"""People-free images as a camera snapshot folder, so `crowdstream finetune` can teach a model that textured
ground with nobody on it counts zero (issue 11: grass and gravel photos counted 100+ people).

Each snapshot is `<stem>.jpg` + `<stem>.json` with no points and one "nobody here" box over the whole image
(the format of training.snapshots). Two sources, both independent of the checks in training.people_free:
- procedural textures (training.negatives: the shipped families and the ground covers added for this, drawn
  with seeds of their own) at zooms 2 and 1, with uneven light, sensor noise and often in grey;
- head-free crops of ShanghaiTech *training-split* images (never the every-5th hold-out): anywhere in the
  image, or right under the most heads, where people's bodies are and their heads are not (a hold-out crop of
  legs and torsos is the people-free check's worst image, 20.5 per 512² with the shipped model).
training.textures (the check set's own generator) and the samples inside third-party packages are never used.
The same folder can also hold the annotated training-split images themselves (`link_training_images`), for a
fine-tune that trains the point loss on them as well.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from crowdstream.engines.frames import holdout_split, spread
from crowdstream.training.annotations import list_dataset, load_any
from crowdstream.training.camera_demo import write_snapshot
from crowdstream.training.finetune_eval import standard_parts
from crowdstream.training.negatives import GENERATORS, MORE_GENERATORS, fractal_noise, head_free_box
from crowdstream.training.people_free import head_free_windows

SIDE = 512
ZOOMS = (2.0, 1.0)
"""Texture drawn at SIDE / zoom pixels, then resized to SIDE: the same material seen closer. Not farther by
default: zoomed-out pebbles look like a dense crowd (one counted 1,881), and training them to zero cost part
A's dense images more in a 3-minute trial."""
GREY_SHARE = 0.4
CROP_SIDES = (512, 384, 256)
BODY_SIDES = (256, 192)
BODY_MIN_HEADS = 2
"""A body crop is kept only when at least this many heads stand right above it."""
SEED = 20261130
"""The textures' own random stream (TextureBank uses (seed, 7), training.textures 7919)."""


def photo_finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uneven light, a little gamma and sensor noise, and sometimes grey: a photograph, not a drawing."""
    side = image.shape[0]
    light = 0.75 + 0.5 * fractal_noise(rng, side, 2)[..., None]
    gamma = rng.uniform(0.8, 1.25)
    out = 255.0 * (image.astype(np.float32) / 255.0) ** gamma * light
    out += rng.normal(0, rng.uniform(1, 6), out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < GREY_SHARE:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return out


def texture_image(
    generator: Callable[[np.random.Generator, int], np.ndarray], zoom: float, rng: np.random.Generator
) -> np.ndarray:
    """One SIDE×SIDE texture of a family at a zoom (2: features twice as large)."""
    drawn = generator(rng, int(round(SIDE / zoom)))
    interpolation = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    return photo_finish(cv2.resize(drawn, (SIDE, SIDE), interpolation=interpolation), rng)


def write_empty(folder: Path, stem: str, image: np.ndarray, source: str) -> Path:
    """A snapshot with no heads and the whole image marked "nobody here"."""
    h, w = image.shape[:2]
    return write_snapshot(folder, stem, image, np.zeros((0, 2)), empty_regions=[[0, 0, w, h]], source=source)


def write_textures(
    folder: Path, variants: int, zooms: tuple[float, ...] = ZOOMS, seed: int = SEED
) -> list[Path]:
    """`variants` textures of every family at every zoom."""
    written = []
    for family in GENERATORS + MORE_GENERATORS:
        for variant in range(variants):
            for zoom in zooms:
                rng = np.random.default_rng(
                    (seed, zlib.crc32(family.__name__.encode()), variant, int(zoom * 10))
                )
                stem = f"tex-{family.__name__}-{variant:02d}-z{zoom:g}"
                written.append(write_empty(folder, stem, texture_image(family, zoom, rng), "texture"))
    return written


def write_head_free_crops(folder: Path, per_part: int, data_root: Path, seed: int = SEED) -> list[Path]:
    """Up to `per_part` head-free square crops of each part's training images (one per image, spread over
    the part; images with no head-free square of the smallest side give none)."""
    written = []
    for part, root in standard_parts(data_root).items():
        train, _ = holdout_split(list_dataset(root))
        for index, path in enumerate(spread(train, per_part)):
            sample = load_any(path)
            rng = np.random.default_rng((seed, ord(part), index))
            side = CROP_SIDES[index % len(CROP_SIDES)]
            box = head_free_box(sample.points, sample.height, sample.width, side, side, rng)
            if box is None:
                continue
            y0, x0, ch, cw = box
            crop = sample.load_image()[y0 : y0 + ch, x0 : x0 + cw]
            stem = f"crop-{part}-{sample.image_path.stem}"
            written.append(write_empty(folder, stem, crop, f"{part}/{sample.image_path.name} {box}"))
    return written


def heads_above(points: np.ndarray, x0: int, y0: int, side: int) -> int:
    """Heads within one window height above the window (x0, y0, side) and across its width: the people
    whose bodies hang down into it."""
    x, y = points[:, 0], points[:, 1]
    return int(((x >= x0) & (x < x0 + side) & (y < y0) & (y >= y0 - side)).sum())


def body_window(points: np.ndarray, height: int, width: int, side: int) -> tuple[int, int, int] | None:
    """The head-free side×side window (x0, y0, heads above) with the most heads right above it, at least
    BODY_MIN_HEADS; None when there is none. Heads are kept CROP_MARGIN pixels clear, as the check's crops."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    scored = [
        (heads_above(points, w.x0, w.y0, side), w) for w in head_free_windows(points, height, width, side)
    ]
    if not scored:
        return None
    heads, best = max(scored, key=lambda pair: (pair[0], -pair[1].y0, -pair[1].x0))
    return (best.x0, best.y0, heads) if heads >= BODY_MIN_HEADS else None


def write_body_crops(folder: Path, per_part: int, data_root: Path) -> list[Path]:
    """Up to `per_part` crops of each part's training images where bodies are and heads are not (one per
    image, spread over the part, sides alternating in BODY_SIDES): trained to zero, they teach that a torso
    or a pair of patterned leggings is nobody until a head is on it."""
    written = []
    for part, root in standard_parts(data_root).items():
        train, _ = holdout_split(list_dataset(root))
        for index, path in enumerate(spread(train, per_part)):
            sample = load_any(path)
            side = BODY_SIDES[index % len(BODY_SIDES)]
            found = body_window(sample.points, sample.height, sample.width, side)
            if found is None:
                continue
            x0, y0, heads = found
            crop = sample.load_image()[y0 : y0 + side, x0 : x0 + side]
            source = f"{part}/{sample.image_path.name} ({y0}, {x0}, {side}, {side}) under {heads} heads"
            written.append(write_empty(folder, f"body-{part}-{sample.image_path.stem}", crop, source))
    return written


def link_training_images(folder: Path, data_root: Path) -> list[Path]:
    """Every ShanghaiTech training-split image (never the hold-out) as an annotated snapshot beside the
    people-free ones: the image linked, not re-encoded, and its heads as the snapshot's points."""
    written = []
    folder.mkdir(parents=True, exist_ok=True)
    for part, root in standard_parts(data_root).items():
        train, _ = holdout_split(list_dataset(root))
        for path in train:
            sample = load_any(path)
            stem = f"train-{part}-{sample.image_path.stem}"
            link = folder / f"{stem}{sample.image_path.suffix.lower()}"
            if not link.exists():
                link.symlink_to(sample.image_path.resolve())
            record = {
                "points": np.round(sample.points, 2).tolist(),
                "source": f"{part}/{sample.image_path.name}",
            }
            (folder / f"{stem}.json").write_text(json.dumps(record))
            written.append(folder / f"{stem}.json")
    return written
