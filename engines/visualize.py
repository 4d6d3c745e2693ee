"""Density maps as pictures: colour-mapped heat blended over the frame (pure NumPy/OpenCV functions).

Shared by `crowdstream density` (training side) and the stream overlays, so both look the same."""

from __future__ import annotations

import cv2
import numpy as np

GAMMA = 0.4
"""Colour level = (density / vmax) ** GAMMA: a sparse head spread over many pixels stays visible next to a
dense cluster whose per-pixel density is a hundred times higher."""


def colorize_density(
    density: np.ndarray, height: int, width: int, vmax: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Density → (BGR heat image, alpha in 0..1) at height×width. `vmax` fixes the colour scale (people per
    pixel of the given map); by default the 99.5th percentile of the non-zero map is full red."""
    density = np.asarray(density, dtype=np.float32)
    resized = cv2.resize(density, (width, height), interpolation=cv2.INTER_LINEAR)
    positive = resized[resized > 0]
    top = vmax if vmax is not None else (float(np.percentile(positive, 99.5)) if positive.size else 1.0)
    level = np.clip(resized / max(top, 1e-12), 0.0, 1.0) ** GAMMA
    heat = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = np.clip(level * 1.2, 0.0, 0.7)  # empty areas stay fully visible
    return heat, alpha


def blend_heatmap(frame: np.ndarray, density: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """The frame with its density map blended on top (a new BGR uint8 image)."""
    heat, alpha = colorize_density(density, frame.shape[0], frame.shape[1], vmax)
    alpha = alpha[..., None]
    return (frame.astype(np.float32) * (1 - alpha) + heat.astype(np.float32) * alpha).astype(np.uint8)


def draw_label(
    image: np.ndarray, text: str, origin: tuple[int, int] = (12, 12), scale: float | None = None
) -> np.ndarray:
    """Draw white text on a dark box, sized relative to the image, in place; returns the image."""
    scale = scale or max(0.5, image.shape[1] / 1400)
    thickness = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = origin
    cv2.rectangle(image, (x, y), (x + w + 12, y + h + base + 12), (20, 20, 20), -1)
    cv2.putText(
        image,
        text,
        (x + 6, y + h + 6),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )
    return image
