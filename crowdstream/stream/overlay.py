"""Heatmap overlays: colour-mapped density blended on the frame, zone outlines, the count, the densest
spot, a legend, and labels with units that never overlap.

Annotators follow supervision's shape: small objects configured once, whose `annotate(scene=..., ...)`
draws on `scene` in place. `render_overlay` composes them on one copy of the frame, at whatever size
that copy has: the live view draws on the frame already scaled to the viewer's size, so the density
map is resampled once, to that size, and zone and marker coordinates (frame pixels of the counted
frame) are scaled with it. The count, the legend and the marker are placed first; each zone's label
then takes the first free place in or around its zone (engines.labels.place_labels).

Text is about 1/20 of the frame's height, so that it stays readable when the picture is shown at a
phone's width. The words match the page's: "64 people", "0.53 /m²".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from crowdstream.engines.labels import (
    Rect,
    draw_label,
    draw_text,
    label_box,
    label_scale,
    place_labels,
    text_size,
)
from crowdstream.engines.visualize import ALERT_COLOR, OK_COLOR, TEXT_COLOR, Color, blend_heatmap
from crowdstream.stream.readings import CameraReading
from crowdstream.stream.zones import Zone, ZoneReading

COUNT_BACKGROUND: Color = (45, 45, 45)
LEGEND_BACKGROUND: Color = (30, 30, 30)
OK_LABEL: Color = (40, 125, 40)  # zone label boxes: darker than the outlines, so white text reads
ALERT_LABEL: Color = (35, 35, 200)
LEGEND_SIZE = 0.75  # legend text relative to the labels


def people(count: float) -> str:
    """'1 person', '64 people' (counts are estimates: rounded to whole people)."""
    whole = round(count)
    return f"{whole} {'person' if whole == 1 else 'people'}"


def zone_label(reading: ZoneReading) -> str:
    """'left-half: 64 people · 0.53 /m²' (the density only for a zone with an area)."""
    text = f"{reading.name}: {people(reading.count)}"
    return text + (f" · {reading.density:.2f} /m²" if reading.density is not None else "")


@dataclass(frozen=True)
class HeatmapAnnotator:
    opacity: float = 0.6
    vmax: float | None = None
    colormap: int = cv2.COLORMAP_JET

    def annotate(self, scene: np.ndarray, density: np.ndarray) -> np.ndarray:
        return blend_heatmap(scene, density, self.opacity, self.vmax, self.colormap)


@dataclass(frozen=True)
class ZoneAnnotator:
    """Zone outlines; a zone over its threshold is drawn in the alert colour. `scale` maps frame pixels
    (where polygons live) to scene pixels."""

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
        alerts = {reading.name for reading in readings if reading.over_threshold}
        for zone in zones:
            color = self.alert_color if zone.name in alerts else self.color
            points = np.round(zone.polygon * scale).astype(np.int32)
            cv2.polylines(scene, [points], True, color, self.thickness, cv2.LINE_AA)
        return scene


def draw_marker(scene: np.ndarray, centre: tuple[int, int], size: int) -> Rect:
    """The densest-spot marker: a white cross on a dark ring; returns the box it covers."""
    radius = max(4, size // 2)
    cv2.circle(scene, centre, radius, (0, 0, 0), max(2, radius // 3), cv2.LINE_AA)
    cv2.drawMarker(
        scene, centre, TEXT_COLOR, cv2.MARKER_CROSS, 2 * radius - 2, max(2, radius // 4), cv2.LINE_AA
    )
    return Rect(centre[0] - radius - 2, centre[1] - radius - 2, 2 * radius + 5, 2 * radius + 5)


@dataclass(frozen=True)
class LegendAnnotator:
    """What the colours and the cross mean, in the bottom-right corner: a colour ramp ('density') and
    the marker ('densest spot')."""

    colormap: int = cv2.COLORMAP_JET

    def annotate(self, scene: np.ndarray, size: float) -> Rect:
        words = ("density", "densest spot")
        pad, (_, text_h) = max(2, round(5 * size)), text_size("density", size)
        ramp_w, gap = 4 * text_h, round(text_h * 0.6)
        width = 2 * pad + ramp_w + gap + sum(text_size(w, size)[0] for w in words) + 3 * gap + text_h
        height = text_h + 2 * pad
        x, y = scene.shape[1] - width - pad, scene.shape[0] - height - pad
        box = Rect(x, y, width, height)
        if x < 0 or y < 0:
            return Rect(0, 0, 0, 0)  # a frame too small for a legend
        cv2.rectangle(scene, (x, y), (x + width - 1, y + height - 1), LEGEND_BACKGROUND, cv2.FILLED)
        ramp = cv2.applyColorMap(np.linspace(0, 255, ramp_w, dtype=np.uint8)[None, :], self.colormap)
        scene[y + pad + text_h // 4 : y + pad + text_h * 3 // 4, x + pad : x + pad + ramp_w] = ramp
        left = x + pad + ramp_w + gap
        draw_text(scene, words[0], (left, y + pad), size, TEXT_COLOR)
        left += text_size(words[0], size)[0] + 2 * gap
        draw_marker(scene, (left + text_h // 2, y + pad + text_h // 2), text_h)
        draw_text(scene, words[1], (left + text_h + gap, y + pad), size, TEXT_COLOR)
        return box


def zone_label_corners(zone: Zone, size: tuple[int, int], scale: float, margin: int) -> list[tuple[int, int]]:
    """Where a zone's label may go, best first: inside its box's corners, just above or below it, at
    its centre, then down its left edge."""
    points = zone.polygon * scale
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    width, height = size
    inside = [
        (x0 + margin, y0 + margin),
        (x1 - width - margin, y0 + margin),
        (x0 + margin, y1 - height - margin),
        (x1 - width - margin, y1 - height - margin),
    ]
    around = [(x0, y0 - height - margin), (x0, y1 + margin), ((x0 + x1 - width) / 2, (y0 + y1 - height) / 2)]
    edge = [(x0 + margin, y) for y in np.arange(y0 + margin, y1 - height, max(1, height // 2))]
    return [(round(x), round(y)) for x, y in inside + around + edge]


def render_overlay(
    frame: np.ndarray,
    density: np.ndarray | None,
    reading: CameraReading | None,
    zones: Sequence[Zone] = (),
    heatmap: HeatmapAnnotator | None = None,
) -> np.ndarray:
    """Heatmap, zones, count, densest spot and legend drawn on one copy of `frame` (just the copy if
    nothing is counted yet). `frame` may be a scaled copy of the counted frame: coordinates follow
    its width."""
    scene = frame.copy()
    if reading is None:
        return scene
    scale = scene.shape[1] / reading.frame_size[0] if reading.frame_size[0] else 1.0
    if density is not None:
        (heatmap or HeatmapAnnotator()).annotate(scene, density)
    ZoneAnnotator().annotate(scene, zones, reading.zones, scale)
    size = label_scale(scene)
    margin = max(2, round(6 * size))
    taken = [LegendAnnotator().annotate(scene, size * LEGEND_SIZE)]
    if reading.densest is not None:
        x, y = reading.densest
        centre = (round(x * scale), round(y * scale))
        taken.append(draw_marker(scene, centre, round(text_size("Hg", size)[1] * 1.2)))
    _count_label(scene, people(reading.count), size, margin, taken)
    _zone_labels(scene, zones, reading.zones, scale, size, margin, taken)
    return scene


def _count_label(scene: np.ndarray, text: str, size: float, margin: int, taken: list[Rect]) -> None:
    """The count in the top-left corner; in the bottom-left one if the densest spot is up there."""
    width, height = label_box(text, size)
    corners = [(margin, margin), (margin, scene.shape[0] - height - margin), (margin + 3 * height, margin)]
    (box,) = place_labels([(width, height)], [corners], (scene.shape[1], scene.shape[0]), taken)
    box = box or Rect(margin, margin, width, height)  # a frame too small for anything else: the count wins
    draw_label(scene, text, box, size, COUNT_BACKGROUND)
    taken.append(box)


def _zone_labels(
    scene: np.ndarray,
    zones: Sequence[Zone],
    readings: Sequence[ZoneReading],
    scale: float,
    size: float,
    margin: int,
    taken: list[Rect],
) -> None:
    by_name = {reading.name: reading for reading in readings}
    texts = [zone_label(by_name[z.name]) if z.name in by_name else z.name for z in zones]
    sizes = [label_box(text, size) for text in texts]
    corners = [zone_label_corners(z, s, scale, margin) for z, s in zip(zones, sizes, strict=True)]
    frame = (scene.shape[1], scene.shape[0])
    for zone, text, box in zip(zones, texts, place_labels(sizes, corners, frame, taken), strict=True):
        if box is not None:
            alert = zone.name in by_name and by_name[zone.name].over_threshold
            draw_label(scene, text, box, size, ALERT_LABEL if alert else OK_LABEL)
