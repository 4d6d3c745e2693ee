"""OpenCV's resizes as weight matrices, so a GPU can cut, resize and stitch tiles with matrix products.

`cv2.resize` is separable: every output row is a weighted sum of input rows, and every output column a
weighted sum of input columns. `axis_weights` builds that (out, in) matrix for one axis exactly as
OpenCV computes its coefficients, so `Wy @ image @ Wx.T` is `cv2.resize(image)` up to OpenCV's
fixed-point rounding. Three kinds, chosen the way `cv2.resize` chooses them:

* `area` (INTER_AREA, shrinking on both axes): each output pixel averages the input pixels its
  footprint covers, partial pixels weighted by the covered fraction;
* `area-up` (INTER_AREA when either axis grows): OpenCV's bilinear variant that keeps pixel edges sharp;
* `linear` (INTER_LINEAR): bilinear with half-pixel centres, clamped at the borders.

`grid_weights` stacks one axis's matrices for all tiles of a grid along the diagonal, so one product
resizes every tile of a frame at once (the "mosaic"): row block r maps the frame rows of tile row r to
its `size` output rows. The same matrices, transposed in role, put tile maps back into a frame map.
"""

from __future__ import annotations

import math

import numpy as np

AREA, AREA_UP, LINEAR = "area", "area-up", "linear"


def resize_kind(src_h: int, src_w: int, dst_h: int, dst_w: int, shrink_with_area: bool) -> str:
    """Which coefficients cv2.resize uses. `shrink_with_area`: the caller asked for INTER_AREA (it does
    when the area shrinks, see engines.preprocess); OpenCV keeps true area averaging only while neither
    axis grows."""
    if not shrink_with_area:
        return LINEAR
    return AREA if src_h >= dst_h and src_w >= dst_w else AREA_UP


def area_weights(src: int, dst: int) -> np.ndarray:
    """INTER_AREA for src >= dst: OpenCV's computeResizeAreaTab (footprint overlaps, 1e-3 snapping)."""
    scale = 1.0 / (dst / src)  # as OpenCV computes it: the last bit decides floors such as 140 * 200/224
    weights = np.zeros((dst, src), np.float64)
    for out in range(dst):
        start, end = out * scale, (out + 1) * scale
        cell = min(scale, src - start)
        first, last = math.ceil(start), min(math.floor(end), src - 1)
        first = min(first, last)
        if first - start > 1e-3:
            weights[out, first - 1] = (first - start) / cell
        weights[out, first:last] = 1.0 / cell
        if end - last > 1e-3:
            weights[out, last] = min(min(end - last, 1.0), cell) / cell
    return weights


def bilinear_weights(src: int, dst: int, area_up: bool) -> np.ndarray:
    """INTER_LINEAR (half-pixel centres) or, with `area_up`, INTER_AREA's growing variant; both clamp
    at the borders as OpenCV's resize coefficient tables do."""
    inverse = dst / src
    scale = 1.0 / inverse  # OpenCV's rounding, then single precision where OpenCV casts to float
    weights = np.zeros((dst, src), np.float64)
    for out in range(dst):
        if area_up:
            left = math.floor(out * scale)
            frac = float(np.float32((out + 1) - (left + 1) * inverse))
            frac = 0.0 if frac <= 0 else frac - math.floor(frac)
        else:
            position = float(np.float32((out + 0.5) * scale - 0.5))
            left = math.floor(position)
            frac = position - left
        if left < 0:
            left, frac = 0, 0.0
        if left >= src - 1:
            left, frac = src - 1, 0.0
        weights[out, left] += 1.0 - frac
        if frac:
            weights[out, left + 1] += frac
    return weights


def axis_weights(src: int, dst: int, kind: str) -> np.ndarray:
    """The (dst, src) float64 matrix of one axis of cv2.resize for `kind` (area, area-up or linear)."""
    if src < 1 or dst < 1:
        raise ValueError(f"resize sizes must be >= 1, got {src} -> {dst}")
    if src == dst:
        return np.eye(dst)
    if kind == AREA:
        return area_weights(src, dst)
    return bilinear_weights(src, dst, area_up=kind == AREA_UP)


def grid_weights(edges: np.ndarray, size: int, kinds: list[str]) -> np.ndarray:
    """Block matrix (len(kinds) * size, edges[-1]): block i resizes frame lines edges[i]:edges[i+1] of
    tile row (or column) i to `size` lines with `kinds[i]`."""
    weights = np.zeros((len(kinds) * size, int(edges[-1])), np.float64)
    for index, kind in enumerate(kinds):
        start, end = int(edges[index]), int(edges[index + 1])
        weights[index * size : (index + 1) * size, start:end] = axis_weights(end - start, size, kind)
    return weights


def paste_weights(edges: np.ndarray, size: int, kinds: list[str]) -> np.ndarray:
    """Block matrix (edges[-1], len(kinds) * size): block i resizes a `size`-line tile map to the
    edges[i+1] - edges[i] lines it covers in the frame map (a zero-line block drops that tile)."""
    weights = np.zeros((int(edges[-1]), len(kinds) * size), np.float64)
    for index, kind in enumerate(kinds):
        start, end = int(edges[index]), int(edges[index + 1])
        if end > start:
            weights[start:end, index * size : (index + 1) * size] = axis_weights(size, end - start, kind)
    return weights
