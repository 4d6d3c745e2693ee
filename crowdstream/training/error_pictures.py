"""Pictures of the images a model counts worst (`crowdstream eval --pictures DIR`): where heat lies on nobody
and where heads got none is seen at a glance, and a table of errors does not show it.

Each picture is the image with the model's density heatmap (the stream's colours) and every annotated head as a
white ring, over a caption: "counted 31 · truth 45 · -14 (-31 %)", with "· self-check: uncertain" when the
model's own check flagged the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from crowdstream.engines.counting import count_frames
from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.labels import Rect, draw_label, label_box, label_scale
from crowdstream.engines.spec import Engine
from crowdstream.engines.visualize import blend_heatmap
from crowdstream.training.annotations import Sample

RING = (255, 255, 255)
LABEL_BACKGROUND = (20, 20, 20)


def worst_images(predicted: Sequence[float], truth: Sequence[float], n: int) -> list[int]:
    """Indexes of the `n` largest absolute errors, largest first (equal errors: the earlier image first).

    >>> worst_images([10, 5, 20, 7], [10, 9, 12, 3], 3)
    [2, 1, 3]
    """
    errors = np.abs(np.asarray(predicted, float) - np.asarray(truth, float))
    return [int(i) for i in np.argsort(-errors, kind="stable")[:n]]


def error_label(counted: float, truth: float, uncertain: bool = False) -> str:
    """What a picture says in its caption.

    >>> error_label(31.2, 45)
    'counted 31 · truth 45 · -14 (-31 %)'
    >>> error_label(2.4, 0, uncertain=True)
    'counted 2 · truth 0 · +2 · self-check: uncertain'
    """
    error = counted - truth
    share = f" ({error / truth:+.0%})".replace("%", " %") if truth else ""
    check = " · self-check: uncertain" if uncertain else ""
    return f"counted {counted:.0f} · truth {truth:.0f} · {error:+.0f}{share}{check}"


def error_picture(image: np.ndarray, density: np.ndarray, heads: np.ndarray, label: str) -> np.ndarray:
    """`image` with `density` (any size: resampled to the image) as a heatmap and each (x, y) of `heads` as a
    ring, over a caption strip holding `label` (below the picture, so it hides no head)."""
    scene = blend_heatmap(image.copy(), density)
    radius = max(3, round(min(image.shape[:2]) / 160))
    for x, y in np.asarray(heads, float).reshape(-1, 2):
        cv2.circle(scene, (round(x), round(y)), radius, RING, 1, cv2.LINE_AA)
    scale = label_scale(scene)
    width, height = label_box(label, scale)
    caption = np.full((height, scene.shape[1], 3), LABEL_BACKGROUND, np.uint8)
    draw_label(caption, label, Rect(0, 0, width, height), scale, LABEL_BACKGROUND)
    return np.vstack([scene, caption])


def picture_folder(folder: Path) -> Path:
    """Make `folder` (and its parents) before any counting, so a bad path fails in a line, not after the run."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrowdstreamError(f"--pictures: cannot make {folder} ({exc.strerror})") from exc
    return folder


def write_error_pictures(
    engine: Engine,
    samples: Sequence[Sample],
    predicted: Sequence[float],
    uncertain: Sequence[bool],
    tiles: str,
    folder: Path,
    n: int,
) -> list[Path]:
    """The `n` samples counted worst (by `predicted`, aligned with `samples`), each recounted for its density
    map and written as FOLDER/<rank>-<image name>.jpg, worst first (FOLDER made by `picture_folder`)."""
    truth = [sample.count for sample in samples]
    written = []
    for rank, index in enumerate(worst_images(predicted, truth, n), start=1):
        sample = samples[index]
        image = sample.load_image()
        (counted,) = count_frames(engine, [image], tiles)
        label = error_label(predicted[index], truth[index], bool(uncertain[index]) if uncertain else False)
        path = folder / f"{rank:02d}-{sample.image_path.stem}.jpg"
        if not cv2.imwrite(str(path), error_picture(image, counted.density, sample.points, label)):
            raise CrowdstreamError(f"--pictures: cannot write {path}")
        written.append(path)
    return written
