"""A camera's snapshots to annotate: the data set `crowdstream finetune` learns the camera from.

One folder per camera holds `<stem>.jpg` (the frame as the camera sent it, no overlay) and
`<stem>.json`, in the project's plain point format plus the regions marked "nobody here":
`{"points": [[x, y], ...], "empty_regions": [[x0, y0, x1, y1], ...], "camera", "taken", "model"}`.
Every file is written to a temporary name and renamed into place, so a reader (the fine-tuning
process, a crash) only ever sees a whole file; the JSON is written last, so a snapshot exists once
its annotation does.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from crowdstream.engines.errors import CrowdstreamError

STEM = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9]{1,12}$")
MAX_MARKS = 20_000
JPEG_QUALITY = 95


class SnapshotError(CrowdstreamError):
    """Marks that cannot be saved, or a snapshot that cannot be read (the message is one line)."""


class SnapshotNotFound(SnapshotError):
    """No snapshot of that name."""


class SnapshotExists(SnapshotError):
    """The frame is already a snapshot."""


@dataclass(frozen=True)
class Marks:
    """Heads (N, 2) [x, y] and "nobody here" boxes (M, 4) [x0, y0, x1, y1], in frame pixels."""

    points: np.ndarray
    empty_regions: np.ndarray

    def as_dict(self) -> dict[str, list]:
        return {
            "points": [[round(float(x), 1), round(float(y), 1)] for x, y in self.points],
            "empty_regions": [[round(float(v), 1) for v in box] for box in self.empty_regions],
        }


@dataclass(frozen=True)
class Snapshot:
    """One annotated frame of a camera."""

    stem: str
    camera: str
    taken: str
    model: str
    size: tuple[int, int]  # (width, height)
    marks: Marks
    corrected: str = ""  # when the operator last saved the marks; "" while they are the model's

    def as_dict(self) -> dict[str, Any]:
        return {
            "stem": self.stem,
            "camera": self.camera,
            "taken": self.taken,
            "model": self.model,
            "size": list(self.size),
            "corrected": self.corrected,
            **self.marks.as_dict(),
        }


def _rows_of_numbers(value: Any, width: int) -> bool:
    """Whether `value` is a list of `width`-number lists, numbers being JSON numbers (numpy would also
    take true as 1 and "5" as 5)."""
    return isinstance(value, list) and all(
        isinstance(row, list)
        and len(row) == width
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in row)
        for row in value
    )


def _numbers(value: Any, width: int, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64) if _rows_of_numbers(value, width) else None
    except OverflowError:  # an integer beyond any float
        array = None
    if array is None or (array.size and (array.ndim != 2 or array.shape[1] != width)):
        raise SnapshotError(f"{what} must be a list of {width}-number lists")
    if not np.isfinite(array).all():
        raise SnapshotError(f"{what} must be finite numbers")
    return array.reshape(-1, width)


def parse_marks(data: Any, size: tuple[int, int]) -> Marks:
    """Check `{"points": [...], "empty_regions": [...]}` against a frame of `size` (width, height):
    points inside the frame, boxes with x0 < x1 and y0 < y1 inside it, no head inside a box."""
    if not isinstance(data, dict) or not set(data) <= {"points", "empty_regions"} or "points" not in data:
        raise SnapshotError('send {"points": [[x, y], ...], "empty_regions": [[x0, y0, x1, y1], ...]}')
    points = _numbers(data["points"], 2, "points")
    boxes = _numbers(data.get("empty_regions", []), 4, "empty_regions")
    if len(points) > MAX_MARKS:
        raise SnapshotError(f"at most {MAX_MARKS} heads per snapshot, got {len(points)}")
    width, height = size
    outside = (points < 0).any(axis=1) | (points[:, 0] > width) | (points[:, 1] > height)
    if outside.any():
        x, y = points[np.argmax(outside)]
        raise SnapshotError(f"head at ({x:g}, {y:g}) is outside the {width}x{height} frame")
    for x0, y0, x1, y1 in boxes:
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise SnapshotError(
                f"empty region [{x0:g}, {y0:g}, {x1:g}, {y1:g}] must have x0 < x1, y0 < y1 and lie "
                f"inside the {width}x{height} frame"
            )
        inside = (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)
        if inside.any():
            raise SnapshotError(
                f"head at ({points[inside][0][0]:g}, {points[inside][0][1]:g}) lies in the empty region "
                f"[{x0:g}, {y0:g}, {x1:g}, {y1:g}]: remove the head or the region"
            )
    return Marks(points, boxes)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and one rename."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        temporary = Path(handle.name)
        try:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class CameraSnapshots:
    """The snapshot folder of one camera; created on the first snapshot."""

    def __init__(self, folder: Path, camera: str) -> None:
        self.folder, self.camera = folder, camera
        self._sizes: dict[str, tuple[int, int]] = {}

    def image_path(self, stem: str) -> Path:
        return self.folder / f"{self._checked(stem)}.jpg"

    def take(self, image: np.ndarray, points: np.ndarray, model: str, seq: int) -> Snapshot:
        """Add a frame (BGR) with its predicted heads; the stem is the UTC time and the frame number,
        so taking the same frame twice is refused instead of doubling it in the data set."""
        now = datetime.now(UTC)
        stem = f"{now:%Y%m%dT%H%M%S}-{seq}"
        if any(self.folder.glob(f"*-{seq}.json")):
            raise SnapshotExists(f"frame {seq} is already a snapshot: wait for the next counted frame")
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise SnapshotError("the frame could not be encoded as JPEG")
        height, width = image.shape[:2]
        marks = parse_marks({"points": points.tolist()}, (width, height))
        snapshot = Snapshot(
            stem, self.camera, now.isoformat(timespec="seconds"), model, (width, height), marks
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomically(self.folder / f"{stem}.jpg", jpeg.tobytes())
        self._sizes[stem] = (width, height)
        self._write_json(snapshot)
        return snapshot

    def list(self) -> list[Snapshot]:
        """Every snapshot, oldest first (stems start with the time)."""
        if not self.folder.is_dir():
            return []
        stems = sorted(p.stem for p in self.folder.glob("*.json") if STEM.match(p.stem))
        return [self.read(stem) for stem in stems if (self.folder / f"{stem}.jpg").is_file()]

    def read(self, stem: str) -> Snapshot:
        path = self.folder / f"{self._checked(stem)}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SnapshotNotFound(f"no snapshot {stem!r}") from None
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"{path}: cannot read the snapshot ({exc})") from None
        size = self._size(stem)
        marks = Marks(
            _numbers(data.get("points", []), 2, f"{path.name}: points"),
            _numbers(data.get("empty_regions", []), 4, f"{path.name}: empty_regions"),
        )
        return Snapshot(
            stem,
            data.get("camera", self.camera),
            data.get("taken", ""),
            data.get("model", ""),
            size,
            marks,
            str(data.get("corrected") or ""),
        )

    def save_marks(self, stem: str, data: Any) -> Snapshot:
        """Replace a snapshot's marks with the page's complete, checked list."""
        current = self.read(stem)
        marks, now = parse_marks(data, current.size), datetime.now(UTC).isoformat(timespec="seconds")
        snapshot = Snapshot(stem, current.camera, current.taken, current.model, current.size, marks, now)
        self._write_json(snapshot)
        return snapshot

    def delete(self, stem: str) -> None:
        """Remove a snapshot, its annotation first (so it leaves the data set at once)."""
        self.read(stem)
        (self.folder / f"{stem}.json").unlink(missing_ok=True)
        (self.folder / f"{stem}.jpg").unlink(missing_ok=True)

    def _write_json(self, snapshot: Snapshot) -> None:
        record = {
            **snapshot.marks.as_dict(),
            "camera": snapshot.camera,
            "taken": snapshot.taken,
            "model": snapshot.model,
            "corrected": snapshot.corrected,
        }
        write_atomically(self.folder / f"{snapshot.stem}.json", json.dumps(record).encode())

    def _size(self, stem: str) -> tuple[int, int]:
        """The frame size, decoded once per snapshot (the page lists them often)."""
        if stem not in self._sizes:
            image = cv2.imread(str(self.folder / f"{stem}.jpg"), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise SnapshotError(f"snapshot {stem!r} has no readable image")
            self._sizes[stem] = (image.shape[1], image.shape[0])
        return self._sizes[stem]

    @staticmethod
    def _checked(stem: str) -> str:
        if not STEM.match(stem):
            raise SnapshotNotFound(f"no snapshot {stem[:40]!r}")
        return stem
