"""Heatmap overlays: colour-mapped density blended on the frame, zone outlines and counts.

Annotators follow supervision's shape: small objects configured once, whose `annotate(scene=..., ...)`
draws on `scene` in place and returns it. `render_overlay` composes them on one copy of the frame, at
whatever size that copy has: the live view draws on the frame already scaled to the viewer's size, so
the density map is resampled once, to that size, and zone and marker coordinates (frame pixels of the
counted frame) are scaled with it.
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
from stream.readings import CameraReading
from stream.zones import Zone, ZoneReading


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
    """Zone outlines with their counts; a zone over its threshold is drawn in the alert colour.
    `scale` maps frame pixels (where polygons live) to scene pixels."""

    color: Color = OK_COLOR
    alert_color: Color = ALERT_COLOR
    thickness: int = 2

    def annotate(
        self,
        scene: np.ndarray,
        zones: Sequence[Zone],
        readings: Sequence[ZoneReading] = (),
        scale: float = 1.0,
    ) -> np.ndarray:
        by_name = {reading.name: reading for reading in readings}
        for zone in zones:
            reading = by_name.get(zone.name)
            color = self.alert_color if reading is not None and reading.over_threshold else self.color
            points = np.round(zone.polygon * scale).astype(np.int32)
            cv2.polylines(
                scene, [points], isClosed=True, color=color, thickness=self.thickness, lineType=cv2.LINE_AA
            )
            label = zone_label(reading) if reading is not None else zone.name
            top_left = points.min(axis=0)
            draw_label(scene, label, (int(top_left[0]), int(top_left[1])), color, 0.6 * text_scale(scene))
        return scene


@dataclass(frozen=True)
class CountAnnotator:
    """The camera's total (and smoothed) count in the top-left corner and a marker on the densest point."""

    color: Color = (40, 40, 40)

    def annotate(self, scene: np.ndarray, reading: CameraReading, scale: float = 1.0) -> np.ndarray:
        size = text_scale(scene)
        draw_label(
            scene, f"people: {reading.count:.0f} (avg {reading.smoothed:.0f})", (8, 8), self.color, size
        )
        if reading.densest is not None:
            x, y = reading.densest
            marker = (round(x * scale), round(y * scale))
            cv2.drawMarker(scene, marker, TEXT_COLOR, cv2.MARKER_CROSS, round(24 * size), 2, cv2.LINE_AA)
        return scene


def render_overlay(
    frame: np.ndarray,
    density: np.ndarray | None,
    reading: CameraReading | None,
    zones: Sequence[Zone] = (),
    heatmap: HeatmapAnnotator | None = None,
) -> np.ndarray:
    """The live view: heatmap, zones and counts drawn on one copy of `frame` (just the copy if nothing is
    counted yet). `frame` may be a scaled copy of the counted frame: coordinates follow its width."""
    scene = frame.copy()
    scale = scene.shape[1] / reading.frame_size[0] if reading is not None and reading.frame_size[0] else 1.0
    if density is not None:
        (heatmap or HeatmapAnnotator()).annotate(scene, density)
    ZoneAnnotator().annotate(scene, zones, reading.zones if reading else (), scale)
    return CountAnnotator().annotate(scene, reading, scale) if reading is not None else scene
