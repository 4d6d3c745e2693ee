"""The people-free check set and the one-person portrait check (checks only, never training data).

Three independent sources of images with nobody in them:
- `package`: sample photographs that ship inside installed third-party packages (scikit-image's data
  module, matplotlib's sample data): grass, gravel, bricks, a rocket on its pad, coffee, coins...;
- `synthetic`: the textures of `training.textures` (their own generator and seed);
- `holdout-crop`: the largest square of each ShanghaiTech hold-out image (every 10th image, which
  neither the every-10th nor the every-5th training split trains on) with no annotated head inside it or
  within a margin around it.
Portraits of one person from the same packages are a separate check whose truth is 1.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crowdstream.engines.counting import count_frames
from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.frames import HOLDOUT_EVERY, PARTS, shanghaitech_part
from crowdstream.engines.spec import Engine
from crowdstream.engines.uncertainty import Uncertainty, frame_uncertainty
from crowdstream.training.annotations import load_any, split_items
from crowdstream.training.textures import synthetic_textures
from crowdstream.training.zoom import Window

log = logging.getLogger(__name__)

SKIMAGE_NEGATIVES = (
    "grass",
    "gravel",
    "brick",
    "rocket",
    "coffee",
    "chelsea",
    "coins",
    "moon",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "cell",
    "clock",
)
"""scikit-image samples with nobody in them, at least 256 px on a side (the tiny ones would be blown up
to a whole tile and say little)."""
SKIMAGE_PORTRAITS = ("astronaut", "camera")
MATPLOTLIB_PORTRAITS = ("grace_hopper.jpg",)
CROP_SIDES = (512, 384, 256)
CROP_MARGIN = 64
"""Frame pixels kept clear around every annotated head, so no cut-off head or face sits at the edge."""
CROP_EVERY = HOLDOUT_EVERY


@dataclass
class CheckImage:
    """One image of a check set: where it comes from and how many people it shows (0, or 1 for portraits)."""

    name: str
    source: str
    image: np.ndarray
    people: int = 0


def as_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """Package samples come as RGB, RGBA, greyscale or float arrays; the product reads BGR uint8."""
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    code = cv2.COLOR_RGBA2BGR if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
    return cv2.cvtColor(image, code)


def package_images(names: tuple[str, ...], people: int, source: str) -> Iterator[CheckImage]:
    """scikit-image samples by loader name; a note instead of images when scikit-image is missing."""
    try:
        import skimage.data
    except ImportError:
        log.warning("scikit-image is not installed, its samples are left out (pip install scikit-image)")
        return
    for name in names:
        yield CheckImage(f"skimage:{name}", source, as_bgr_uint8(getattr(skimage.data, name)()), people)


def matplotlib_images(names: tuple[str, ...], people: int, source: str) -> Iterator[CheckImage]:
    """matplotlib's bundled sample images (mpl-data/sample_data) by file name, where installed."""
    try:
        import matplotlib
    except ImportError:
        log.warning("matplotlib is not installed, its samples are left out")
        return
    from crowdstream.training.annotations import read_image

    folder = Path(matplotlib.get_data_path()) / "sample_data"
    for name in names:
        if (folder / name).is_file():
            yield CheckImage(f"matplotlib:{name}", source, read_image(folder / name), people)


def head_free_windows(
    points: np.ndarray, height: int, width: int, side: int, margin: int = CROP_MARGIN, stride: int = 16
) -> list[Window]:
    """Every side×side window on a `stride` grid with no head inside it or within `margin` of it.

    Heads are counted per window with a summed-area table of a per-pixel head histogram, so all windows
    of an image are checked in one vectorised step."""
    if side > min(height, width):
        return []
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    rows = np.clip(np.floor(points[:, 1]).astype(int), 0, height - 1)
    cols = np.clip(np.floor(points[:, 0]).astype(int), 0, width - 1)
    table = np.zeros((height + 1, width + 1), dtype=np.int64)
    np.add.at(table, (rows + 1, cols + 1), 1)
    table = table.cumsum(0).cumsum(1)  # table[i, j]: heads with row < i and column < j
    y0s, x0s = np.arange(0, height - side + 1, stride), np.arange(0, width - side + 1, stride)
    top, bottom = np.clip(y0s - margin, 0, height), np.clip(y0s + side + margin, 0, height)
    left, right = np.clip(x0s - margin, 0, width), np.clip(x0s + side + margin, 0, width)
    heads = (
        table[np.ix_(bottom, right)]
        - table[np.ix_(top, right)]
        - table[np.ix_(bottom, left)]
        + table[np.ix_(top, left)]
    )
    return [Window(int(x0s[c]), int(y0s[r]), side, side) for r, c in np.argwhere(heads == 0)]


def holdout_crops(data_root: Path, every: int = CROP_EVERY, seed: int = 0) -> Iterator[CheckImage]:
    """From each hold-out image, one head-free square of the largest side in CROP_SIDES that fits,
    picked with a seed fixed per image name. Both parts must be there: a check must not quietly shrink."""
    roots = [shanghaitech_part(part, data_root) for part in PARTS]
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        raise CrowdstreamError(f"{', '.join(missing)}: not found under the data root {data_root}")
    for part, root in zip(PARTS, roots, strict=True):
        for path in split_items(root, every)[1]:
            sample = load_any(path)
            for side in CROP_SIDES:
                windows = head_free_windows(sample.points, sample.height, sample.width, side)
                if windows:
                    rng = np.random.default_rng([seed, zlib.crc32(path.name.encode())])
                    w = windows[rng.integers(len(windows))]
                    crop = sample.load_image()[w.y0 : w.y0 + w.height, w.x0 : w.x0 + w.width]
                    yield CheckImage(f"{part}/{path.stem}@{w.x0},{w.y0}+{side}", "holdout-crop", crop.copy())
                    break


def people_free_set(data_root: Path | None, every: int = CROP_EVERY) -> Iterator[CheckImage]:
    """The people-free check set, in a fixed order; the hold-out crops only with a data root."""
    yield from package_images(SKIMAGE_NEGATIVES, 0, "package")
    for name, image in synthetic_textures().items():
        yield CheckImage(f"synthetic:{name}", "synthetic", image)
    if data_root is not None:
        yield from holdout_crops(data_root, every)


def portrait_set() -> Iterator[CheckImage]:
    """Photographs of exactly one person (truth 1)."""
    yield from package_images(SKIMAGE_PORTRAITS, 1, "portrait")
    yield from matplotlib_images(MATPLOTLIB_PORTRAITS, 1, "portrait")


TARGET_MEAN, TARGET_MAX = 1.0, 3.0
"""Issue 11's target: under 1 person per 512×512 on average, none above 3."""
AREA = 512 * 512


@dataclass
class CheckResult:
    """What the model counted on one check image, and its self-check: a people-free photo flagged
    uncertain is a false alarm the operator would see."""

    name: str
    source: str
    width: int
    height: int
    people: int
    count: float
    self_check: Uncertainty

    def as_dict(self) -> dict:
        fields = {key: value for key, value in vars(self).items() if key != "self_check"}
        return {**fields, "per_512": self.per_512, **self.self_check.as_dict()}

    @property
    def per_512(self) -> float:
        """The count scaled to a 512×512 area, so images of every size compare with the target."""
        return self.count * AREA / (self.width * self.height)


def count_checks(
    engine: Engine, images: Iterable[CheckImage], tiles: str = "auto", progress: bool = True
) -> list[CheckResult]:
    """Count every check image with the stream's own tiling, and self-check each count."""
    results = []
    for item in tqdm(images, desc="counting", unit="img", disable=not progress):
        (frame,) = count_frames(engine, [item.image], tiles)
        height, width = item.image.shape[:2]
        self_check = frame_uncertainty(engine, item.image, frame)
        results.append(
            CheckResult(item.name, item.source, width, height, item.people, frame.count, self_check)
        )
    return results


def summarise_people_free(results: list[CheckResult]) -> dict:
    """Per source and overall: images, mean and largest count per 512×512, how many exceed the target's
    maximum, and whether the target is met."""

    def stats(chosen: list[CheckResult]) -> dict:
        per_512 = np.array([r.per_512 for r in chosen])
        return {
            "images": len(chosen),
            "mean_per_512": float(per_512.mean()),
            "max_per_512": float(per_512.max()),
            "above_max": int((per_512 > TARGET_MAX).sum()),
        }

    summary = {source: stats([r for r in results if r.source == source]) for source in _sources(results)}
    overall = stats(results) if results else {"images": 0}
    overall["target_met"] = (
        bool(results) and overall["mean_per_512"] < TARGET_MEAN and not overall["above_max"]
    )
    return {"by_source": summary, "all": overall}


def _sources(results: list[CheckResult]) -> list[str]:
    return list(dict.fromkeys(r.source for r in results))
