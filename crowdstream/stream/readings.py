"""What one counted frame says: the camera's count, its smoothed count, each zone's people and density,
and where it is densest. `frame_reading` computes it from a frame's density map, pure and testable alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from crowdstream.engines.counting import densest_point
from crowdstream.stream.self_checks import NO_CHECKS, RecentChecks
from crowdstream.stream.zones import Zone, ZoneReading


@dataclass(frozen=True)
class CameraReading:
    """One counted frame of one camera."""

    EVENT: ClassVar[str] = "reading"

    camera: str
    timestamp: float  # wall-clock seconds of capture
    count: float
    smoothed: float
    zones: tuple[ZoneReading, ...] = ()
    frame_age: float = 0.0  # seconds from capture to publish
    densest: tuple[int, int] | None = None  # (x, y) in frame pixels
    frame_size: tuple[int, int] = (0, 0)  # (width, height)
    self_checks: RecentChecks = NO_CHECKS  # the camera's recent count self-checks (none yet: empty)

    def as_dict(self) -> dict:
        return {
            "camera": self.camera,
            "timestamp": self.timestamp,
            "count": round(self.count, 2),
            "smoothed": round(self.smoothed, 2),
            "frame_age": round(self.frame_age, 4),
            "densest": list(self.densest) if self.densest else None,
            "frame_size": list(self.frame_size),
            **self._doubt(),
            "zones": [
                {
                    "name": z.name,
                    "count": round(z.count, 2),
                    "density": None if z.density is None else round(z.density, 4),
                    "threshold": z.threshold,
                    "over_threshold": z.over_threshold,
                }
                for z in self.zones
            ],
        }

    def _doubt(self) -> dict:
        """The camera's verdict from its recent self-checks and the latest one's spread (all None before
        the first)."""
        checks, latest = self.self_checks, self.self_checks.latest
        if latest is None:
            return dict.fromkeys(("uncertain", "uncertainty", "uncertain_share", "uncertain_reason"))
        return {
            "uncertain": checks.uncertain,
            "uncertainty": round(latest.spread, 4),
            "uncertain_share": round(checks.share, 3),
            "uncertain_reason": checks.reason,
        }


def smooth(count: float, previous: CameraReading | None, alpha: float) -> float:
    """Exponential moving average of a camera's counts: `alpha` weighs the newest (1: no smoothing)."""
    return count if previous is None else alpha * count + (1 - alpha) * previous.smoothed


def frame_reading(
    camera: str,
    timestamp: float,
    frame_size: tuple[int, int],
    count: float,
    density: np.ndarray,
    zones: Sequence[Zone],
    previous: CameraReading | None,
    alpha: float,
    self_checks: RecentChecks = NO_CHECKS,
) -> CameraReading:
    """The reading of one counted frame of `frame_size` (width, height) with its density map; the camera's
    previous reading carries the smoothing state."""
    return CameraReading(
        camera=camera,
        timestamp=timestamp,
        count=count,
        smoothed=smooth(count, previous, alpha),
        zones=tuple(zone.reading(density, frame_size) for zone in zones),
        densest=densest_point(density, frame_size),
        frame_size=frame_size,
        self_checks=self_checks,
    )
