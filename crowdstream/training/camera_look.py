"""What a real surveillance camera does to a picture, as pure NumPy/OpenCV functions: fewer pixels (VGA and
below, so heads shrink to 5–15 px), video compression, motion and focus blur, sensor noise, low light,
infrared-like grey and colour casts.

ShanghaiTech's frames are sharp, well-lit JPEGs; an operator's camera is not, and the shipped model read a
real 640×480 camera at half its count (issue 25). Training images and check images are degraded by the same
`degrade`, with a seed per image, so a check is reproducible and never shares its draw with training.

>>> import numpy as np
>>> image = np.full((480, 640, 3), 128, np.uint8)
>>> out, scale = degrade(image, np.random.default_rng(0), CameraLook())
>>> out.dtype, out.ndim, 352 <= round(640 * scale) <= 800  # CameraLook.width
(dtype('uint8'), 3, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

VGA = (640, 480)


@dataclass(frozen=True)
class CameraLook:
    """Ranges a degradation is drawn from (each applied with its own chance)."""

    width: tuple[int, int] = (352, 800)
    """Frame width after resizing (aspect kept): CIF to SVGA, VGA in the middle."""
    jpeg_quality: tuple[int, int] = (20, 75)
    motion_blur: float = 0.25
    focus_blur: float = 0.35
    noise: float = 0.5
    low_light: float = 0.3
    infrared: float = 0.15
    colour_cast: float = 0.3


CHECK_LOOK = CameraLook(width=(640, 640), jpeg_quality=(30, 30), motion_blur=0, focus_blur=1.0, noise=0,
                        low_light=0, infrared=0, colour_cast=0)  # fmt: skip
"""The issue's public recipe for a camera-like check: 640 px wide, JPEG quality 30, focus blur (σ≈1)."""
NIGHT_LOOK = CameraLook(width=(640, 640), jpeg_quality=(30, 30), motion_blur=0, focus_blur=0, noise=1.0,
                        low_light=1.0, infrared=1.0, colour_cast=0)  # fmt: skip
"""An infrared camera at night, for a check: grey, dark (gamma 1.3–2.2 at 40–80 % gain), sensor noise (σ 2–9
grey levels), 640 px wide, JPEG quality 30."""


def resize_to_width(image: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """The image `width` pixels wide (aspect kept) and the scale factor applied to its coordinates."""
    scale = width / image.shape[1]
    size = (width, max(1, round(image.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation), scale


def motion_blur(image: np.ndarray, length: int, angle: float) -> np.ndarray:
    """A straight-line blur `length` pixels long at `angle` degrees (a walker or a panning camera)."""
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """The image after a JPEG round trip at `quality` (blocking and ringing, as a video encoder leaves)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else image


def mask_outside_region(
    image: np.ndarray, heads: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The frame with everything outside a random counting region painted black, as operators hand in
    frames of a fixed camera (the shop fronts and the far end masked), and the heads inside that region.
    The region is a convex quadrilateral, each corner pulled in from its frame corner by up to 30 % of the
    width and height: it holds the frame's middle and covers 16–100 % of it."""
    height, width = image.shape[:2]
    inset = rng.uniform(0.0, 0.3, size=(4, 2)) * [width, height]
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    polygon = np.round(corners + inset * [[1, 1], [-1, 1], [-1, -1], [1, -1]]).astype(np.int32)
    region = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(region, polygon, 1)
    out = image * region[..., None]
    inside = [0 <= int(x) < width and 0 <= int(y) < height and bool(region[int(y), int(x)]) for x, y in heads]
    return out, heads[np.asarray(inside, bool)].reshape(-1, 2)


def degrade(image: np.ndarray, rng: np.random.Generator, look: CameraLook) -> tuple[np.ndarray, float]:
    """`image` (BGR uint8) as a camera of `look` would record it; returns it and the coordinate scale
    (head points are multiplied by it)."""
    out, scale = resize_to_width(image, int(rng.integers(look.width[0], look.width[1] + 1)))
    out = out.astype(np.float32)
    if rng.random() < look.colour_cast:
        out *= rng.uniform(0.8, 1.2, size=3)
    if rng.random() < look.low_light:
        out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** rng.uniform(1.3, 2.2) * rng.uniform(0.4, 0.8)
    if rng.random() < look.infrared:
        grey = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
        out = np.repeat(grey[..., None], 3, axis=2)
    if rng.random() < look.focus_blur:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.6, 1.4))
    if rng.random() < look.motion_blur:
        out = motion_blur(out, int(rng.integers(3, 8)), float(rng.uniform(0, 180)))
    if rng.random() < look.noise:
        out += rng.normal(0, rng.uniform(2, 9), out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    return jpeg(out, int(rng.integers(look.jpeg_quality[0], look.jpeg_quality[1] + 1))), scale
