"""How far a count can be trusted, from the model itself: the same frame counted a second way, and how
soft the frame is compared with the sharp photographs the model learned from.

A density model outside its range gives itself away. Counted with tiles 1.5× finer (heads 1.5× larger in
the model's input), a frame the model reads well gives nearly the same count; a camera it does not know
gives another (measured on a real VGA surveillance camera: counts at two tilings differed by a median of
19 %, on ShanghaiTech part B test by 0 %). A soft frame — upscaled, blurred or heavily compressed, as VGA
cameras deliver — has little detail left at full resolution, and the model under-counted such frames by a
quarter on the hold-out (`crowdstream check cameras`), so a soft frame with people in it is flagged too.
A frame read as nearly empty is not judged by its second count: finer tiles magnify a texture into head-sized
blobs (held-out texture families read 0.0 by the first pass, 1.2–15.6 by the second), and an empty frame read
as empty is right.

`spread` is the figure: |first − second| / max(first, second, MIN_PEOPLE). It costs one more model pass of
the frame, so the stream computes it every few seconds per camera, not on every frame.

>>> round(count_spread(30.0, 24.0), 3)
0.2
>>> count_spread(0.4, 1.2)  # a few tenths of a person are no disagreement
0.26666666666666666
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

import cv2
import numpy as np

from crowdstream.engines.counting import FrameCount, count_frames
from crowdstream.engines.spec import Engine

MIN_PEOPLE = 3.0
"""Counts are compared relative to at least this many people: 0.5 against 1.5 is no disagreement."""
MAX_SPREAD = 0.2
"""A frame whose two counts differ by more than this share is uncertain."""
FINER = 1.5
"""The second view's tiles per side, relative to the first pass's grid."""
SOFT_DETAIL = 0.55
"""Detail ratio (see `detail_ratio`) below which a frame is softer than the training photographs: their
hold-out reads 0.49–0.92 (5th–95th percentile 0.60–0.78 on part B), frames through the public camera recipe
(640 px, JPEG 30, blur σ 1) 0.41–0.49."""
SPREAD_MIN_COUNT = 1.0
"""The spread is judged only when the first count holds at least this many people: below it the count is
within one person of an empty frame's truth, and the second count is the one a texture fools (on the
held-out families, 4 of 20 flagged, every one read 0.0)."""
SOFT_MIN_COUNT = 3.0
"""A soft frame is flagged only when it holds at least this many counted people: an empty soft frame read
as empty is no error worth an alert."""


@dataclass(frozen=True)
class Uncertainty:
    """One frame's self-check: the second count, the spread between the two counts, the frame's detail
    ratio, and the verdict with its reason in words ("" when the count is not uncertain), so a person is
    told which rule fired — a soft frame's two counts may agree."""

    second_count: float
    spread: float
    detail: float
    uncertain: bool
    reason: str = ""

    def as_dict(self) -> dict:
        return {
            "uncertain": self.uncertain,
            "uncertainty": round(self.spread, 4),
            "second_count": round(self.second_count, 2),
            "detail": round(self.detail, 3),
            "reason": self.reason,
        }


def count_spread(first: float, second: float) -> float:
    """|first − second| relative to the larger count (at least MIN_PEOPLE)."""
    return abs(first - second) / max(first, second, MIN_PEOPLE)


def detail_ratio(frame: np.ndarray) -> float:
    """Laplacian energy (std) of the frame over that of its half-size copy: about 0.7 for a sharp photo,
    under 0.5 for an upscaled, blurred or heavily compressed one (it has nothing finer than 2 px left)."""
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    grey = grey.astype(np.float32)
    height, width = grey.shape
    if height < 8 or width < 8:
        return 1.0
    half = cv2.resize(grey, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_32F).std() / (cv2.Laplacian(half, cv2.CV_32F).std() + 1e-6))


def finer_tiles(counted: FrameCount) -> tuple[int, int]:
    """The second view's grid: FINER times the first pass's tiles per side."""
    return ceil(counted.grid.rows * FINER), ceil(counted.grid.cols * FINER)


def judge(first: float, second: float, detail: float) -> Uncertainty:
    """The verdict from the two counts and the frame's detail ratio.

    >>> judge(20.0, 12.0, detail=0.7).reason
    'counted 20 and 12 at two tilings (40 % apart)'
    >>> judge(20.0, 19.0, detail=0.45).reason
    'a softer picture than the model learned from (detail 0.45, under 0.55)'
    """
    spread = count_spread(first, second)
    reasons = []
    if spread > MAX_SPREAD and first >= SPREAD_MIN_COUNT:
        reasons.append(f"counted {first:.0f} and {second:.0f} at two tilings ({spread * 100:.0f} % apart)")
    if detail < SOFT_DETAIL and first >= SOFT_MIN_COUNT:
        reasons.append(
            f"a softer picture than the model learned from (detail {detail:.2f}, under {SOFT_DETAIL})"
        )
    return Uncertainty(second, spread, detail, bool(reasons), "; ".join(reasons))


def frame_uncertainty(
    engine: Engine, frame: np.ndarray, counted: FrameCount, max_batch: int = 32
) -> Uncertainty:
    """Count `frame` again with finer tiles and judge the two counts (`counted` is its first count)."""
    (second,) = count_frames(engine, [frame], finer_tiles(counted), counted.scale, max_batch)
    return judge(counted.count, second.count, detail_ratio(frame))
