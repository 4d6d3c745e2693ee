"""Point annotations: one `Sample` type and readers for ShanghaiTech, NWPU-Crowd and plain JSON/CSV.

Every reader reports bad input as an `AnnotationError` whose message names the file, so the CLI can print
one line instead of a traceback.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.frames import HOLDOUT_EVERY, holdout_split, image_files, natural_key

log = logging.getLogger(__name__)

BORDER_TOLERANCE = 1.0
"""Points up to this many pixels outside the image are clipped onto it; farther ones are dropped."""


class AnnotationError(CrowdstreamError):
    """An annotation or image that cannot be used; the message names the file."""


@dataclass
class Sample:
    """One annotated image: head points as an (N, 2) float array of (x, y) pixels inside the image, and
    the boxes an operator marked "nobody here" as a (K, 4) float array of (x0, y0, x1, y1) pixels (the
    page's camera snapshots have them; fine-tuning trains them towards zero density)."""

    image_path: Path
    points: np.ndarray
    width: int
    height: int
    dropped: int = 0
    notes: list[str] = field(default_factory=list)
    empty_regions: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))

    @property
    def count(self) -> int:
        return len(self.points)

    def load_image(self) -> np.ndarray:
        """The image as BGR uint8 (greyscale and alpha are converted)."""
        return read_image(self.image_path)


def read_image(path: Path) -> np.ndarray:
    """Read an image as BGR uint8 or raise AnnotationError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: image not found")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise AnnotationError(f"{path}: not a readable image (empty, truncated or unknown format)")
    return image


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file."""
    image = read_image(path)
    return image.shape[1], image.shape[0]


def clean_points(points: np.ndarray, width: int, height: int, source: Path) -> tuple[np.ndarray, int]:
    """Validate and clip points to the image; return (points, number dropped).

    NaN/inf coordinates are an error; points within BORDER_TOLERANCE of the image are clipped onto its
    edge pixels; points farther out are dropped and counted.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        return np.zeros((0, 2), dtype=np.float32), 0
    if points.ndim != 2 or points.shape[1] < 2:
        raise AnnotationError(f"{source}: points must be a list of [x, y] pairs, got shape {points.shape}")
    points = points[:, :2]
    if not np.isfinite(points).all():
        bad = int((~np.isfinite(points)).any(axis=1).sum())
        raise AnnotationError(f"{source}: {bad} point(s) have NaN or infinite coordinates")
    limit = np.array([width, height], dtype=np.float64)
    inside = ((points >= -BORDER_TOLERANCE) & (points <= limit + BORDER_TOLERANCE)).all(axis=1)
    kept = np.clip(points[inside], 0.0, limit - 1e-3)
    return kept.astype(np.float32), int((~inside).sum())


def clean_regions(regions: object, width: int, height: int, source: Path) -> np.ndarray:
    """Validate "nobody here" boxes [[x0, y0, x1, y1], ...] and clip them to the image: a box that is
    not four finite numbers, is empty, or lies wholly outside the image is an error naming the file."""
    try:
        boxes = np.asarray(regions, dtype=np.float64).reshape(-1, 4)
    except (TypeError, ValueError) as exc:
        raise AnnotationError(f"{source}: empty_regions must be a list of [x0, y0, x1, y1] boxes") from exc
    if not np.isfinite(boxes).all():
        raise AnnotationError(f"{source}: empty_regions has NaN or infinite coordinates")
    limit = np.array([width, height, width, height], dtype=np.float64)
    clipped = np.clip(boxes, 0.0, limit)
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    if empty.any():
        box = boxes[int(np.argmax(empty))].tolist()
        raise AnnotationError(
            f"{source}: empty region {box} is empty or outside the {width}x{height} image "
            "(boxes are [x0, y0, x1, y1] with x0 < x1 and y0 < y1)"
        )
    return clipped.astype(np.float32)


def _sample(
    image_path: Path,
    raw_points: np.ndarray,
    source: Path,
    declared: int | None,
    regions: object = (),
    strict: bool = False,
) -> Sample:
    """`strict`: a point outside the image is an error instead of a dropped point and a warning."""
    width, height = image_size(image_path)
    points, dropped = clean_points(raw_points, width, height, source)
    if strict and dropped:
        raise AnnotationError(f"{source}: {dropped} point(s) outside the {width}x{height} image")
    empty_regions = clean_regions(regions, width, height, source)
    notes = []
    if declared is not None and declared != len(raw_points):
        notes.append(f"declares {declared} people but lists {len(raw_points)} points; trusting the points")
    if dropped:
        notes.append(f"dropped {dropped} point(s) outside the {width}x{height} image")
    for note in notes:
        log.warning("%s: %s", source, note)
    return Sample(image_path, points, width, height, dropped, notes, empty_regions)


def read_shanghaitech_points(mat_path: Path) -> np.ndarray:
    """Head points from a ShanghaiTech `GT_IMG_n.mat` file."""
    from scipy.io import loadmat

    try:
        info = loadmat(str(mat_path))["image_info"]
        return np.asarray(info[0, 0][0, 0][0], dtype=np.float64).reshape(-1, 2)
    except FileNotFoundError as exc:
        raise AnnotationError(f"{mat_path}: annotation not found") from exc
    except Exception as exc:  # scipy raises many types for corrupt files
        raise AnnotationError(f"{mat_path}: not a readable ShanghaiTech .mat file ({exc})") from exc


def load_shanghaitech(image_path: Path) -> Sample:
    """`.../images/IMG_n.jpg` with its `.../ground-truth/GT_IMG_n.mat`."""
    image_path = Path(image_path)
    mat_path = image_path.parent.parent / "ground-truth" / f"GT_{image_path.stem}.mat"
    return _sample(image_path, read_shanghaitech_points(mat_path), mat_path, None)


def _read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise AnnotationError(f"{path}: annotation not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc})") from exc


def load_nwpu(json_path: Path, image_dir: Path | None = None, strict: bool = False) -> Sample:
    """NWPU-Crowd: `{"img_id": "0009.jpg", "human_num": 100, "points": [[x, y], ...]}`; also the page's
    camera snapshots (`<stem>.json` beside `<stem>.jpg`, with optional `empty_regions`)."""
    json_path = Path(json_path)
    data = _read_json(json_path)
    if not isinstance(data, dict) or "points" not in data:
        raise AnnotationError(f"{json_path}: expected an object with 'img_id', 'human_num' and 'points'")
    image_name = data.get("img_id") or f"{json_path.stem}.jpg"
    image_path = (image_dir or json_path.parent) / str(image_name)
    declared = data.get("human_num")
    declared = int(declared) if isinstance(declared, (int, float)) else None
    regions = data.get("empty_regions") or ()
    raw = _as_point_array(data["points"], json_path)
    return _sample(image_path, raw, json_path, declared, regions, strict)


def _as_point_array(points: object, source: Path) -> np.ndarray:
    try:
        return np.asarray(points, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError) as exc:
        raise AnnotationError(f"{source}: points must be a list of [x, y] number pairs") from exc


def load_points_file(annotation: Path, image_path: Path) -> Sample:
    """Users' own labels: a JSON list of [x, y] (or an object with `points`), or a CSV with x,y columns."""
    annotation = Path(annotation)
    if annotation.suffix.lower() == ".csv":
        raw = _read_csv_points(annotation)
    elif annotation.suffix.lower() == ".mat":
        raw = read_shanghaitech_points(annotation)
    else:
        data = _read_json(annotation)
        labelled = isinstance(data, dict) and "points" in data
        raw = _as_point_array(data["points"] if labelled else data, annotation)
        return _sample(
            Path(image_path), raw, annotation, None, (data.get("empty_regions") or ()) if labelled else ()
        )
    return _sample(Path(image_path), raw, annotation, None)


def _read_csv_points(path: Path) -> np.ndarray:
    try:
        rows = list(csv.reader(Path(path).read_text().splitlines()))
    except FileNotFoundError as exc:
        raise AnnotationError(f"{path}: annotation not found") from exc
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not a text CSV file") from exc
    if rows and rows[0] and not _is_number(rows[0][0]):
        rows = rows[1:]  # header such as "x,y"
    try:
        return np.array([[float(r[0]), float(r[1])] for r in rows if r], dtype=np.float64).reshape(-1, 2)
    except (ValueError, IndexError) as exc:
        raise AnnotationError(f"{path}: every CSV row must be 'x,y' numbers") from exc


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def dataset_layout(root: Path) -> str:
    """'shanghaitech' (images/ + ground-truth/) or 'nwpu' (images with one JSON each)."""
    root = Path(root)
    if (root / "images").is_dir() and (root / "ground-truth").is_dir():
        return "shanghaitech"
    if any(root.glob("*.json")) or (root / "jsons").is_dir():
        return "nwpu"
    raise AnnotationError(
        f"{root}: not a data set folder (expected images/ and ground-truth/ for ShanghaiTech, "
        "or images with NWPU-style .json files)"
    )


def iter_dataset(root: Path) -> Iterator[Sample]:
    """Samples of a ShanghaiTech- or NWPU-layout folder, in a fixed natural order."""
    root = Path(root)
    layout = dataset_layout(root)
    if layout == "shanghaitech":
        for image_path in image_files(root / "images"):
            yield load_shanghaitech(image_path)
        return
    json_dir = root / "jsons" if (root / "jsons").is_dir() else root
    image_dir = root / "images" if (root / "images").is_dir() else root
    for json_path in sorted(json_dir.glob("*.json"), key=natural_key):
        yield load_nwpu(json_path, image_dir)


def list_dataset(root: Path) -> list[Path]:
    """The annotation-bearing image paths of a data set folder, without reading them (for splits)."""
    root = Path(root)
    if dataset_layout(root) == "shanghaitech":
        return image_files(root / "images")
    json_dir = root / "jsons" if (root / "jsons").is_dir() else root
    return sorted(json_dir.glob("*.json"), key=natural_key)


def load_any(path: Path, strict: bool = False) -> Sample:
    """Load one item returned by `list_dataset` (`strict`: points outside the image are an error)."""
    path = Path(path)
    return (
        load_nwpu(path, path.parent.parent / "images" if path.parent.name == "jsons" else None, strict)
        if (path.suffix == ".json")
        else load_shanghaitech(path)
    )


def split_items(root: Path, every: int = HOLDOUT_EVERY) -> tuple[list[Path], list[Path]]:
    """(train, validation) items of a data set folder: the fixed hold-out of `engines.frames.holdout_split`
    (natural order: with 10, the 10th, 20th, ... are validation).

    The every-10th hold-out is a subset of the every-5th one, so a model trained with either can be
    scored on the images it never saw."""
    return holdout_split(list_dataset(root), every)
