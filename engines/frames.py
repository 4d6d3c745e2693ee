"""Real frames for calibration and benchmarks: ShanghaiTech images from the shared data root.

Images are listed in natural order (IMG_2 before IMG_10) and split the way training splits them:
every 10th image is held out for validation, so INT8 calibration never sees a validation image.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from engines.errors import EngineError

DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
"""`<repo>/../shared/data`, where the project machines mount the data sets."""
HOLDOUT_EVERY = 10
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
PARTS = ("part_A", "part_B")


def natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def image_files(folder: Path) -> list[Path]:
    return sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)


def shanghaitech_images(data_root: Path = DEFAULT_DATA_ROOT, split: str = "train") -> list[Path]:
    """ShanghaiTech train_data images of both parts: `train` (natural index, counted from 1, not a
    multiple of 10), `validation` (the rest) or `all`."""
    if split not in ("train", "validation", "all"):
        raise EngineError(f"split must be train, validation or all, got {split!r}")
    folders = [Path(data_root) / "shanghaitech" / part / "train_data" / "images" for part in PARTS]
    folders = [f for f in folders if f.is_dir()]
    if not folders:
        raise EngineError(
            f"{data_root}: no ShanghaiTech images under shanghaitech/part_A|part_B/train_data/images"
        )
    chosen = []
    for folder in folders:
        for index, path in enumerate(image_files(folder), start=1):
            held_out = index % HOLDOUT_EVERY == 0
            if split == "all" or held_out == (split == "validation"):
                chosen.append(path)
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
