"""Annotated pictures of a camera, each made once and shared by everyone who shows it.

- The **snapshot** is the newest counted frame with its own density map, zones and counts, full size.
- A **live picture** is the camera's newest frame (at the camera's rate) scaled to the viewers' width,
  with the newest density overlay drawn on it: the heatmap of the last counted frame follows the video
  between two counts. It is rendered once per (frame, count) pair whatever the number of viewers, and
  its JPEG is encoded once for all MJPEG viewers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from crowdstream.stream.overlay import render_overlay
from crowdstream.stream.readings import CameraReading
from crowdstream.stream.sources import Frame
from crowdstream.stream.zones import Zone


@dataclass(frozen=True)
class Counted:
    """A camera's newest counted frame as the hub keeps it; `seq` numbers the hub's updates."""

    frame: Frame
    density: np.ndarray
    reading: CameraReading
    seq: int


def fit_for_view(image: np.ndarray, max_width: int) -> np.ndarray:
    """Scale a BGR frame down to `max_width` and crop to even sides (what 4:2:0 video encoders need);
    may return a view of `image`."""
    height, width = image.shape[:2]
    if width > max_width:
        height, width = max(2, round(height * max_width / width)), max_width
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image[: height - height % 2, : width - width % 2]


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


@dataclass(eq=False)
class Picture:
    """One rendered live picture; `key` is (frame seq, counted seq, width). `jpeg()` encodes it once per
    quality, whichever viewer asks first (the others wait for that encode instead of repeating it)."""

    key: tuple[int, int, int]
    image: np.ndarray
    _jpeg: dict[int, bytes] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def jpeg(self, quality: int) -> bytes:
        with self._lock:
            if quality not in self._jpeg:
                self._jpeg[quality] = encode_jpeg(self.image, quality)
            return self._jpeg[quality]


def render_snapshot(counted: Counted, zones: Sequence[Zone]) -> np.ndarray:
    """The counted frame with its own heatmap, zones and counts, full size."""
    return render_overlay(counted.frame.image, counted.density, counted.reading, zones)


def render_live(
    frame: Frame, counted: Counted | None, zones: Sequence[Zone], key: tuple[int, int, int]
) -> Picture:
    """`frame` scaled to the key's width with the newest overlay (none before the first count)."""
    _frame_seq, _counted_seq, width = key
    view = fit_for_view(frame.image, width)
    if counted is None:
        return Picture(key, np.ascontiguousarray(view))
    return Picture(key, render_overlay(view, counted.density, counted.reading, zones))
