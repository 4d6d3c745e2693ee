"""The bundled demo clip, shot by shot: which ShanghaiTech image every frame shows, through which window.

One description serves both sides: `bench/make_demo_clip.py` renders the clip from it, and
`crowdstream check demo` counts frames of the clip against their source images' annotations, moved
through the same window. Each image gets a slow pan and zoom (Ken Burns) of `SHOT_SECONDS`, cross-faded
into the next over `FADE_SECONDS`; only frames that show one image (no cross-fade) are scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.training.annotations import load_shanghaitech
from crowdstream.training.evaluate import Scene

# Part_B training images from sparse (~40 people) to dense (~300): the count visibly changes in the demo.
IMAGES = (
    "IMG_6.jpg",
    "IMG_75.jpg",
    "IMG_109.jpg",
    "IMG_169.jpg",
    "IMG_21.jpg",
    "IMG_18.jpg",
    "IMG_343.jpg",
    "IMG_96.jpg",
)
SIZE = (1280, 720)
FPS = 12
SHOT_SECONDS = 4.0
FADE_SECONDS = 0.5


@dataclass(frozen=True)
class Layer:
    """One shot's contribution to an output frame: frame `index` of shot `shot`, blended with `weight`."""

    shot: int
    index: int
    weight: float = 1.0


def view_matrix(width: int, height: int, t: float, zoom_in: bool) -> np.ndarray:
    """The 2×3 affine map from image to frame pixels at time t (0..1) of a shot: a 16:9 window that zooms
    from the full width to 0.8 of it (or back) while drifting across."""
    out_w, out_h = SIZE
    scale = 1.0 - 0.2 * (t if zoom_in else 1.0 - t)
    crop_w = min(width, height * out_w / out_h) * scale
    crop_h = crop_w * out_h / out_w
    x0 = (width - crop_w) * (0.25 + 0.5 * t)
    y0 = (height - crop_h) * (0.6 - 0.2 * t)
    zoom = out_w / crop_w
    return np.float32([[zoom, 0, -x0 * zoom], [0, zoom, -y0 * zoom]])


def shot_time(index: int, frames: int) -> float:
    return index / max(frames - 1, 1)


def zooms_in(shot: int) -> bool:
    return shot % 2 == 0


def render(image: np.ndarray, t: float, zoom_in: bool) -> np.ndarray:
    """One frame of a shot, resampled with sub-pixel accuracy so the motion is smooth."""
    matrix = view_matrix(image.shape[1], image.shape[0], t, zoom_in)
    return cv2.warpAffine(image, matrix, SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def schedule(
    shots: int, fps: int = FPS, seconds: float = SHOT_SECONDS, fade: float = FADE_SECONDS
) -> list[tuple[Layer, ...]]:
    """The layers of every output frame: one layer inside a shot, two (fading out, fading in) between
    shots; every shot's frames play once, the first `fade` seconds of a shot hidden in the fade."""
    length, overlap = round(seconds * fps), round(fade * fps)
    frames: list[tuple[Layer, ...]] = []
    for shot in range(shots):
        start = overlap if shot else 0
        end = length - overlap if shot < shots - 1 else length
        frames.extend((Layer(shot, i),) for i in range(start, end))
        if shot < shots - 1:
            for k in range(overlap):
                alpha = (k + 1) / (overlap + 1)
                frames.append((Layer(shot, end + k, 1 - alpha), Layer(shot + 1, k, alpha)))
    return frames


def visible_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Head points moved into frame pixels, keeping those the frame shows."""
    moved = np.asarray(points, dtype=np.float64).reshape(-1, 2) @ matrix[:, :2].T + matrix[:, 2]
    inside = (moved >= 0).all(axis=1) & (moved[:, 0] < SIZE[0]) & (moved[:, 1] < SIZE[1])
    return moved[inside].astype(np.float32)


def scored_frames(per_shot: int, shots: int = len(IMAGES)) -> dict[int, Layer]:
    """Output frame number → its single layer, for `per_shot` frames spread evenly over each shot's
    un-faded frames."""
    plain = [(number, layers[0]) for number, layers in enumerate(schedule(shots)) if len(layers) == 1]
    chosen = {}
    for shot in range(shots):
        own = [item for item in plain if item[1].shot == shot]
        for i in np.linspace(0, len(own) - 1, min(per_shot, len(own))).round().astype(int):
            chosen[own[i][0]] = own[i][1]
    return chosen


def demo_scenes(clip: Path, images_dir: Path, per_shot: int = 5) -> list[list[Scene]]:
    """For each shot, `per_shot` decoded frames of the clip with the source annotation seen through the
    frame's window as truth."""
    samples = [load_shanghaitech(Path(images_dir) / name) for name in IMAGES]
    wanted = scored_frames(per_shot)
    total = len(schedule(len(IMAGES)))
    frames = _decode(clip, set(wanted), total)
    scenes: list[list[Scene]] = [[] for _ in IMAGES]
    for number, layer in sorted(wanted.items()):
        sample = samples[layer.shot]
        t = shot_time(layer.index, round(SHOT_SECONDS * FPS))
        matrix = view_matrix(sample.width, sample.height, t, zooms_in(layer.shot))
        name = f"shot {layer.shot + 1} frame {number}"
        scenes[layer.shot].append(Scene(name, frames[number], visible_points(sample.points, matrix)))
    return scenes


def _decode(clip: Path, wanted: set[int], total: int) -> dict[int, np.ndarray]:
    """The wanted frames of the clip; the clip must have exactly the schedule's frames."""
    capture = cv2.VideoCapture(str(clip))
    if not capture.isOpened():
        raise CrowdstreamError(f"{clip}: cannot open the demo clip")
    frames, number = {}, 0
    try:
        while capture.grab():
            if number in wanted:
                frames[number] = capture.retrieve()[1]
            number += 1
    finally:
        capture.release()
    if number != total:
        raise CrowdstreamError(
            f"{clip}: {number} frames, but the demo schedule has {total} (was it built with other settings?)"
        )
    return frames
