"""Real frames for calibration and benchmarks, and the facts every package shares about image data:
how the data sets lie under a data root (named by engines.data_root), which files are images, and which
images are held out.

Images are listed in natural order (IMG_2 before IMG_10) and split by `holdout_split`, which training,
evaluation, calibration and the benchmarks all use: every HOLDOUT_EVERY-th image is held out for
validation, so neither training nor INT8 calibration ever sees a validation image.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from crowdstream.engines.errors import EngineError

HOLDOUT_EVERY = 5
"""Every HOLDOUT_EVERY-th image of a part, in natural order, is held out for validation."""
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
"""Files read as still images everywhere (data sets, image-folder cameras, `crowdstream count`)."""
PARTS = ("part_A", "part_B")

T = TypeVar("T")


def shanghaitech_part(part: str, data_root: Path) -> Path:
    """The `train_data` folder of a ShanghaiTech part ('A' or 'part_A', 'B' or 'part_B') under a data root."""
    folder = part if part.startswith("part_") else f"part_{part}"
    return Path(data_root) / "shanghaitech" / folder / "train_data"


def holdout_split(items: Sequence[T], every: int = HOLDOUT_EVERY) -> tuple[list[T], list[T]]:
    """(train, validation) of items in natural order: the `every`-th, 2×`every`-th, … item (counted
    from 1) is validation, the rest is training."""
    validation = [item for index, item in enumerate(items, start=1) if index % every == 0]
    train = [item for index, item in enumerate(items, start=1) if index % every != 0]
    return train, validation


def natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def image_files(folder: Path) -> list[Path]:
    """The image files of a folder in natural order."""
    images = (p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return sorted(images, key=natural_key)


def shanghaitech_images(data_root: Path, split: str = "train") -> list[Path]:
    """ShanghaiTech train_data images of both parts: `train`, `validation` (see `holdout_split`) or `all`."""
    if split not in ("train", "validation", "all"):
        raise EngineError(f"split must be train, validation or all, got {split!r}")
    folders = [shanghaitech_part(part, data_root) / "images" for part in PARTS]
    folders = [f for f in folders if f.is_dir()]
    if not folders:
        raise EngineError(
            f"{data_root}: no ShanghaiTech images under shanghaitech/part_A|part_B/train_data/images"
        )
    chosen = []
    for folder in folders:
        images = image_files(folder)
        train, validation = holdout_split(images)
        chosen += images if split == "all" else train if split == "train" else validation
    return chosen


def read_frame(path: Path) -> np.ndarray:
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise EngineError(f"{path}: not a readable image")
    return frame


def frame_paths(source: Path) -> list[Path]:
    """An image file, or every image in a folder (natural order)."""
    source = Path(source)
    if source.is_file():
        return [source]
    if source.is_dir():
        paths = image_files(source)
        if paths:
            return paths
    raise EngineError(f"{source}: no images found (give an image file or a folder of .jpg/.png files)")


def spread(paths: list[Path], count: int) -> list[Path]:
    """`count` paths evenly spread over the list (deterministic, covers both parts)."""
    if count >= len(paths):
        return list(paths)
    return [paths[i] for i in np.linspace(0, len(paths) - 1, count).round().astype(int)]
