"""Which snapshot an operator should correct next: among those still holding the model's marks, the one
whose scene differs most from the snapshots already corrected (a crowd, light or layout the corrections do
not cover yet teaches the fine-tune the most); with none corrected yet, the one that differs most from the
rest. Scenes are compared by small grey thumbnails (correlation), so it costs a few microseconds each.

>>> import numpy as np
>>> flat, dark = np.full((48, 64), 100, np.uint8), np.zeros((48, 64), np.uint8)
>>> ramp = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
>>> suggest({"a": ramp, "b": ramp[:, ::-1], "c": ramp}, corrected={"a"})
'b'
>>> suggest({"a": flat}, corrected={"a"}) is None
True
"""

from __future__ import annotations

import cv2
import numpy as np

from crowdstream.stream.snapshots import CameraSnapshots, Snapshot

THUMBNAIL = (32, 24)


def thumbnail(grey: np.ndarray) -> np.ndarray:
    """A THUMBNAIL-sized grey image, zero mean and unit norm (a flat image stays zero)."""
    small = cv2.resize(grey, THUMBNAIL, interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm > 0 else small


def suggest(frames: dict[str, np.ndarray], corrected: set[str]) -> str | None:
    """The stem to correct next (None when every snapshot is corrected); `frames` are grey images."""
    todo = [stem for stem in frames if stem not in corrected]
    if not todo:
        return None
    thumbs = {stem: thumbnail(frame) for stem, frame in frames.items()}
    reference = [thumbs[stem] for stem in frames if stem in corrected] or list(thumbs.values())

    def difference(stem: str) -> float:
        others = [ref for ref in reference if ref is not thumbs[stem]] or reference
        return 1.0 - max(float(thumbs[stem] @ ref) for ref in others)

    return max(todo, key=difference)


def next_to_correct(store: CameraSnapshots, snapshots: list[Snapshot]) -> str | None:
    """suggest() over a camera's snapshots, their frames read at a quarter size."""
    frames = {}
    for snapshot in snapshots:
        grey = cv2.imread(str(store.image_path(snapshot.stem)), cv2.IMREAD_REDUCED_GRAYSCALE_4)
        if grey is not None:
            frames[snapshot.stem] = grey
    return suggest(frames, {snapshot.stem for snapshot in snapshots if snapshot.corrected})
