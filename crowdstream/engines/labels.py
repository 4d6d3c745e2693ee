"""Labels on pictures: text with units, and places for it where no two labels overlap. The one label
drawer: the live overlay (stream.overlay) and `crowdstream density` both draw with it.

OpenCV's Hershey fonts are ASCII only, so "0.53 /m²" and "64 people · 1.5 /m²" would print "?" for
the "²" and the "·". `draw_text` draws those two itself (a raised small "2", a dot), so the overlay can
say the units the page says. `place_labels` is the layout, pure: each label takes the first of its
candidate positions that lies inside the frame and clear of everything placed before it (the count,
the legend, the densest-point marker, earlier labels); a label with no free place is left out rather
than drawn over another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
SUPERSCRIPT = 0.6  # the raised "2" at this fraction of the text's size
SPECIAL = {"²", "·"}


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int

    def overlaps(self, other: Rect) -> bool:
        return (
            self.x < other.x + other.width
            and other.x < self.x + self.width
            and self.y < other.y + other.height
            and other.y < self.y + self.height
        )

    def inside(self, width: int, height: int) -> bool:
        return self.x >= 0 and self.y >= 0 and self.x + self.width <= width and self.y + self.height <= height


def label_scale(scene: np.ndarray) -> float:
    """Text size for a frame: about 1/20 of its height, so that the picture scaled to a phone's width
    (a 720p frame shown 390 pixels wide) still shows 11-pixel text."""
    return max(0.45, scene.shape[0] / 450)


def _thickness(scale: float) -> int:
    return max(1, round(scale * 1.6))


def _runs(text: str) -> list[str]:
    """`text` split into plain runs and the special characters, in order."""
    runs, current = [], ""
    for char in text:
        if char in SPECIAL:
            runs += [current, char] if current else [char]
            current = ""
        else:
            current += char
    return runs + [current] if current else runs


def _run_width(run: str, scale: float) -> int:
    if run == "²":
        return cv2.getTextSize("2", FONT, scale * SUPERSCRIPT, _thickness(scale))[0][0]
    if run == "·":
        return cv2.getTextSize(" ", FONT, scale, _thickness(scale))[0][0]
    return cv2.getTextSize(run, FONT, scale, _thickness(scale))[0][0]


def text_size(text: str, scale: float) -> tuple[int, int]:
    """(width, height) of `text`, descenders included."""
    (_, height), baseline = cv2.getTextSize("Hg", FONT, scale, _thickness(scale))
    return sum(_run_width(run, scale) for run in _runs(text)), height + baseline


def draw_text(scene: np.ndarray, text: str, origin: tuple[int, int], scale: float, color) -> None:
    """`text` with its top-left corner at `origin`, in place."""
    thickness = _thickness(scale)
    (_, ascent), _ = cv2.getTextSize("Hg", FONT, scale, thickness)
    x, baseline = origin[0], origin[1] + ascent
    for run in _runs(text):
        if run == "²":
            raised = (x, baseline - round(ascent * 0.45))
            cv2.putText(scene, "2", raised, FONT, scale * SUPERSCRIPT, color, thickness, cv2.LINE_AA)
        elif run == "·":
            centre = (x + _run_width(run, scale) // 2, baseline - ascent // 2)
            cv2.circle(scene, centre, max(1, round(scale * 2)), color, cv2.FILLED, cv2.LINE_AA)
        else:
            cv2.putText(scene, run, (x, baseline), FONT, scale, color, thickness, cv2.LINE_AA)
        x += _run_width(run, scale)


def label_box(text: str, scale: float) -> tuple[int, int]:
    """(width, height) of a label: the text and its padding."""
    width, height = text_size(text, scale)
    pad = _padding(scale)
    return width + 2 * pad, height + 2 * pad


def _padding(scale: float) -> int:
    return max(2, round(5 * scale))


def draw_label(
    scene: np.ndarray, text: str, box: Rect, scale: float, background, color=(255, 255, 255)
) -> None:
    """A label on its filled box (as `label_box` measured it at `scale`), in place."""
    cv2.rectangle(
        scene, (box.x, box.y), (box.x + box.width - 1, box.y + box.height - 1), background, cv2.FILLED
    )
    pad = _padding(scale)
    draw_text(scene, text, (box.x + pad, box.y + pad), scale, color)


def place_labels(
    sizes: Sequence[tuple[int, int]],
    candidates: Sequence[Sequence[tuple[int, int]]],
    frame: tuple[int, int],
    taken: Sequence[Rect] = (),
) -> list[Rect | None]:
    """For each label (its (width, height) and its candidate top-left corners, best first), the first
    candidate box inside the `frame` (width, height) that overlaps none of `taken` nor the labels
    placed before it; None where every candidate is blocked."""
    placed: list[Rect] = list(taken)
    result: list[Rect | None] = []
    for (width, height), corners in zip(sizes, candidates, strict=True):
        box = next(
            (
                rect
                for x, y in corners
                if (rect := Rect(int(x), int(y), width, height)).inside(*frame)
                and not any(rect.overlaps(other) for other in placed)
            ),
            None,
        )
        if box is not None:
            placed.append(box)
        result.append(box)
    return result
