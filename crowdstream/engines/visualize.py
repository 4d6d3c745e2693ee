"""Density maps as pictures: pure drawing primitives shared by `crowdstream density` (training side) and
the stream's overlay annotators (crowdstream/stream/overlay.py), so ground truth and live heatmaps look
the same. Their labels are drawn by engines.labels."""

from __future__ import annotations

import cv2
import numpy as np

Color = tuple[int, int, int]  # BGR

OK_COLOR: Color = (80, 220, 80)
ALERT_COLOR: Color = (40, 40, 240)
TEXT_COLOR: Color = (255, 255, 255)
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
    """Blend the colour-mapped density over `scene` in place (and return it); opacity grows with density
    so empty areas stay clear. The map is resampled once, to the scene's size."""
    height, width = scene.shape[:2]
    colors, intensity = colorize_density(density, (width, height), vmax, colormap)
    alpha = opacity * intensity
    return cv2.blendLinear(colors, scene, alpha, 1.0 - alpha, dst=scene)
