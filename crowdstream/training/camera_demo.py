"""A camera the shipped model gets badly wrong, made from real annotations: a zoomed view of one
ShanghaiTech part B scene (the Bund promenade, seen by the same street camera in several training images).
A fixed window of the frame, enlarged 2.5× to a 1024×768 "camera" frame, shows people close to the lens with
heads 2.5× larger than in the data; the shipped model counts about half of them.

`write_snapshot` writes one snapshot in the page's format (`<stem>.jpg` + `<stem>.json`), so the demo, the
tests and the page's folders are read by the same code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crowdstream.engines.frames import shanghaitech_part
from crowdstream.training.annotations import load_shanghaitech

SCENE = ("IMG_183", "IMG_349", "IMG_107", "IMG_263", "IMG_206")
"""Part B training images (never the every-5th hold-out) of one camera viewpoint, found by the correlation
of their 32×24 grey thumbnails and checked by eye."""
FRAME = (1024, 768)


@dataclass(frozen=True)
class View:
    """A camera's window on the source frame: `zoom` times smaller than it, its top-left corner at the
    fractions (`left`, `top`) of the free space."""

    zoom: float = 2.5
    left: float = 0.0
    top: float = 0.7


def zoomed(image: np.ndarray, points: np.ndarray, view: View) -> tuple[np.ndarray, np.ndarray]:
    """(FRAME-sized crop, its head points) for a view of a source image."""
    height, width = image.shape[:2]
    ch, cw = int(height / view.zoom), int(width / view.zoom)
    y0, x0 = int(view.top * (height - ch)), int(view.left * (width - cw))
    inside = (points[:, 0] >= x0) & (points[:, 0] < x0 + cw) & (points[:, 1] >= y0) & (points[:, 1] < y0 + ch)
    scale = np.array([FRAME[0] / cw, FRAME[1] / ch])
    frame = cv2.resize(image[y0 : y0 + ch, x0 : x0 + cw], FRAME, interpolation=cv2.INTER_LINEAR)
    return frame, (points[inside] - [x0, y0]) * scale


def write_snapshot(folder: Path, stem: str, image: np.ndarray, points: np.ndarray, **fields) -> Path:
    """`<stem>.jpg` and `<stem>.json` ({"points": [[x, y], ...], **fields}) in the page's format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    record = {"points": np.round(np.asarray(points, float), 2).tolist(), **fields}
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(record))
    return path


def build_camera(folder: Path, data_root: Path, view: View = View(), scene=SCENE) -> list[Path]:
    """Write one snapshot per scene image of part B under `data_root`; returns the annotation files."""
    images = shanghaitech_part("B", data_root) / "images"
    written = []
    for index, name in enumerate(scene):
        sample = load_shanghaitech(images / f"{name}.jpg")
        frame, points = zoomed(sample.load_image(), sample.points, view)
        written.append(
            write_snapshot(folder, f"snap_{index + 1}", frame, points, camera="bund-zoom", source=name)
        )
    return written
