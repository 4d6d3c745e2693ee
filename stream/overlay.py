"""Heatmap overlays: colour-mapped density blended on the frame, zone outlines and counts.

Annotators follow supervision's shape: small objects configured once, with `annotate(scene=..., ...)`
returning a new BGR uint8 image and leaving the input untouched. `render_overlay` composes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from stream.hub import CameraReading, ZoneReading
from stream.zones import Zone

Color = tuple[int, int, int]  # BGR

OK_COLOR: Color = (80, 220, 80)
ALERT_COLOR: Color = (40, 40, 240)
TEXT_COLOR: Color = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_SCALE = 5e-3
"""Density (people per map pixel) drawn at full colour when the map has nothing denser."""


def colorize_density(
    density: np.ndarray, size: tuple[int, int], vmax: float | None = None, colormap: int = cv2.COLORMAP_JET
) -> tuple[np.ndarray, np.ndarray]:
    """Density map → (BGR colour image, 0..1 intensity), both resized to `size` (width, height).

    Without `vmax` the scale follows the map's high percentile (isolated peaks do not wash out the rest),
    with a floor so an empty scene stays clear instead of amplifying noise. A square-root curve keeps
    sparse crowds visible next to dense ones."""
    density = np.asarray(density, dtype=np.float32)
    peak = float(np.percentile(density, 99.5)) if density.size else 0.0
    scale = vmax if vmax is not None else max(peak, MIN_SCALE)
    resized = cv2.resize(density, size, interpolation=cv2.INTER_LINEAR)
    intensity = np.sqrt(np.clip(resized / scale, 0.0, 1.0))
    colors = cv2.applyColorMap((intensity * 255).astype(np.uint8), colormap)
    return colors, intensity


def blend_heatmap(
    scene: np.ndarray,
    density: np.ndarray,
    opacity: float = 0.6,
    vmax: float | None = None,
    colormap: int = cv2.COLORMAP_JET,
) -> np.ndarray:
    """Blend the colour-mapped density over `scene`; opacity grows with density so empty areas stay clear."""
    height, width = scene.shape[:2]
    colors, intensity = colorize_density(density, (width, height), vmax, colormap)
    alpha = (opacity * intensity)[..., None]
    return (scene.astype(np.float32) * (1 - alpha) + colors.astype(np.float32) * alpha).astype(np.uint8)


def draw_label(scene: np.ndarray, text: str, origin: tuple[int, int], color: Color, scale: float) -> None:
    """Text on a filled box, in place; `origin` is the box's top-left corner, kept inside the image."""
    thickness = max(1, round(scale * 2))
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, round(4 * scale))
    x = int(np.clip(origin[0], 0, max(0, scene.shape[1] - text_w - 2 * pad)))
    y = int(np.clip(origin[1], 0, max(0, scene.shape[0] - text_h - baseline - 2 * pad)))
    cv2.rectangle(scene, (x, y), (x + text_w + 2 * pad, y + text_h + baseline + 2 * pad), color, cv2.FILLED)
    cv2.putText(scene, text, (x + pad, y + pad + text_h), _FONT, scale, TEXT_COLOR, thickness, cv2.LINE_AA)


def _text_scale(scene: np.ndarray) -> float:
    return max(0.4, min(scene.shape[:2]) / 720)


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
            draw_label(out, label, (int(top_left[0]), int(top_left[1])), color, 0.6 * _text_scale(out))
        return out


@dataclass(frozen=True)
class CountAnnotator:
    """The camera's total (and smoothed) count in the top-left corner and a marker on the densest point."""

    color: Color = (40, 40, 40)

    def annotate(self, scene: np.ndarray, reading: CameraReading) -> np.ndarray:
        out = scene.copy()
        scale = _text_scale(out)
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
