"""Heatmap overlays: colour-mapped density blended on the frame, zone outlines and counts.

Annotators follow supervision's shape: small objects configured once, with `annotate(scene=..., ...)`
returning a new BGR uint8 image and leaving the input untouched. `render_overlay` composes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from engines.visualize import (
    ALERT_COLOR,
    OK_COLOR,
    TEXT_COLOR,
    Color,
    blend_heatmap,
    draw_label,
    text_scale,
)
from stream.hub import CameraReading, ZoneReading
from stream.zones import Zone


def zone_label(reading: ZoneReading) -> str:
    text = f"{reading.name}: {reading.count:.0f}"
    return text + (f" ({reading.density:.2f}/m2)" if reading.density is not None else "")


@dataclass(frozen=True)
class HeatmapAnnotator:
    opacity: float = 0.6
    vmax: float | None = None
    colormap: int = cv2.COLORMAP_JET

    def annotate(self, scene: np.ndarray, density: np.ndarray) -> np.ndarray:
        return blend_heatmap(scene, density, self.opacity, self.vmax, self.colormap)


@dataclass(frozen=True)
class ZoneAnnotator:
    """Zone outlines with their counts; a zone over its threshold is drawn in the alert colour."""

    color: Color = OK_COLOR
    alert_color: Color = ALERT_COLOR
    thickness: int = 2

    def annotate(
        self, scene: np.ndarray, zones: Sequence[Zone], readings: Sequence[ZoneReading] = ()
    ) -> np.ndarray:
        out = scene.copy()
        by_name = {reading.name: reading for reading in readings}
        for zone in zones:
            reading = by_name.get(zone.name)
            color = self.alert_color if reading is not None and reading.over_threshold else self.color
            points = np.round(zone.polygon).astype(np.int32)
            cv2.polylines(
                out, [points], isClosed=True, color=color, thickness=self.thickness, lineType=cv2.LINE_AA
            )
            label = zone_label(reading) if reading is not None else zone.name
            top_left = points.min(axis=0)
            draw_label(out, label, (int(top_left[0]), int(top_left[1])), color, 0.6 * text_scale(out))
        return out


@dataclass(frozen=True)
class CountAnnotator:
    """The camera's total (and smoothed) count in the top-left corner and a marker on the densest point."""

    color: Color = (40, 40, 40)

    def annotate(self, scene: np.ndarray, reading: CameraReading) -> np.ndarray:
        out = scene.copy()
        scale = text_scale(out)
        draw_label(
            out, f"people: {reading.count:.0f} (avg {reading.smoothed:.0f})", (8, 8), self.color, scale
        )
        if reading.densest is not None:
            cv2.drawMarker(
                out, reading.densest, TEXT_COLOR, cv2.MARKER_CROSS, round(24 * scale), 2, cv2.LINE_AA
            )
        return out


def render_overlay(
    frame: np.ndarray,
    density: np.ndarray | None,
    reading: CameraReading | None,
    zones: Sequence[Zone] = (),
    heatmap: HeatmapAnnotator | None = None,
) -> np.ndarray:
    """The live view: heatmap, zones and counts on a copy of `frame` (just the frame if nothing is counted)."""
    heatmap = heatmap or HeatmapAnnotator()
    scene = heatmap.annotate(frame, density) if density is not None else frame.copy()
    scene = ZoneAnnotator().annotate(scene, zones, reading.zones if reading else ())
    return CountAnnotator().annotate(scene, reading) if reading is not None else scene
