"""Training tiles drawn where the model trains: the loader plans each tile (which image, which box, which
flip, colour and blur), and the pixels are cut, resized and augmented on the training device.

Why: on a borrowed H200 the previous loader (OpenCV crops, resizes and NumPy colour jitter in a pool of
threads) fed about 420 tiles/s while the GPU could take several times more; about 90 % of a tile's CPU time
was the resize and the colour arithmetic. A plan is a few numbers, so one CPU thread plans thousands of
tiles per second, and the sources (every training image and synthetic texture, ~1.5 GB of uint8 for both
ShanghaiTech parts) sit once in device memory. On the CPU the same code runs with `device="cpu"`: one path,
tested on the machine that has no GPU.

Resizing follows engines.preprocess.resize_tile with the matrices of engines.resize_weights (the one
definition of cv2.resize's coefficients, which the device counter uses too): area averaging when
shrinking, OpenCV's own variants when an axis grows, so training tiles look like the tiles the engines
cut from frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from crowdstream.engines.resize_weights import axis_weights, resize_kind
from crowdstream.engines.spec import INPUT_SIZE

GREY_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R 601 luma weights for (R, G, B), as OpenCV's BGR→grey conversion uses."""


@dataclass(frozen=True)
class TilePlan:
    """One training tile as numbers: a box of a source image and the augmentations to apply.

    `box` is (y0, x0, height, width) in source pixels; `turns` rotates by quarter turns (textures have no
    up); `blur` is a Gaussian sigma in tile pixels (0: none); `gain` multiplies the (B, G, R) channels and
    `offset` is added to all three, in 0..255 units, after the optional greyscale conversion."""

    source: int
    box: tuple[int, int, int, int]
    flip: bool = False
    turns: int = 0
    grey: bool = False
    blur: float = 0.0
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: float = 0.0


class TileRenderer:
    """Holds the source images (H×W×3 BGR uint8) on a device and renders plans into model inputs."""

    def __init__(
        self, sources: Sequence[np.ndarray], device: torch.device | str = "cpu", size: int = INPUT_SIZE
    ):
        self.device = torch.device(device)
        self.size = size
        self.sources = [torch.from_numpy(np.ascontiguousarray(s)).to(self.device) for s in sources]

    def render(self, plans: Sequence[TilePlan]) -> torch.Tensor:
        """(N, 3, size, size) float32 RGB in 0..255 (not yet normalised), on the renderer's device."""
        tiles = torch.cat([self._geometry(plan) for plan in plans])
        greys = [plan.grey for plan in plans]
        if any(greys):  # decided on the host: no device synchronisation per batch
            tiles = _greyscale(tiles, torch.tensor(greys, device=self.device))
        for row, plan in enumerate(plans):
            if plan.blur > 0:
                tiles[row : row + 1] = gaussian_blur(tiles[row : row + 1], plan.blur)
        gain = torch.tensor([p.gain[::-1] for p in plans], dtype=torch.float32, device=self.device)
        offset = torch.tensor([p.offset for p in plans], dtype=torch.float32, device=self.device)
        return (tiles * gain[:, :, None, None] + offset[:, None, None, None]).clamp_(0, 255)

    def _geometry(self, plan: TilePlan) -> torch.Tensor:
        """The plan's box resized to the model input, RGB, turned and mirrored: (1, 3, size, size)."""
        y0, x0, height, width = plan.box
        crop = self.sources[plan.source][y0 : y0 + height, x0 : x0 + width]
        tile = resize_crop(crop.permute(2, 0, 1)[None].flip(1).float(), self.size)
        if plan.turns % 4:
            tile = torch.rot90(tile, plan.turns, dims=(2, 3))
        return tile.flip(3) if plan.flip else tile


def resize_crop(crop: torch.Tensor, size: int) -> torch.Tensor:
    """(1, C, h, w) float → (1, C, size, size) as cv2.resize does it in engines.preprocess.resize_tile
    (INTER_AREA when the area shrinks, else INTER_LINEAR): two matrix products per channel."""
    height, width = crop.shape[-2:]
    kind = resize_kind(height, width, size, size, height * width > size * size)
    rows, columns = _weights(height, size, kind, crop.device), _weights(width, size, kind, crop.device)
    return rows @ crop @ columns.T  # (size, h) · (h, w) · (w, size)


@lru_cache(maxsize=512)
def _weights(length: int, size: int, kind: str, device: torch.device) -> torch.Tensor:
    """One axis's engines.resize_weights matrix as float32 on `device`, kept: tile sides repeat (at most
    a few hundred distinct lengths), so a run builds and copies each matrix about once (at most ~0.5 GB).
    (torch's own "area" mode is adaptive pooling over whole pixels, which shifts edges by up to a pixel at
    fractional ratios: 3 grey levels on average on real photos, against under 1 with OpenCV's weights.)"""
    return torch.from_numpy(axis_weights(length, size, kind)).to(device, torch.float32)


def _greyscale(tiles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Replace the tiles where `mask` holds by their luma in all three channels."""
    weights = torch.tensor(GREY_WEIGHTS, device=tiles.device).view(1, 3, 1, 1)
    luma = (tiles * weights).sum(1, keepdim=True).expand_as(tiles)
    return torch.where(mask[:, None, None, None], luma, tiles)


def gaussian_blur(tiles: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur with a mirrored border, the kernel size OpenCV picks for 8-bit images."""
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=tiles.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = tiles.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    padded = F.pad(tiles, (radius, radius, radius, radius), mode="reflect")
    blurred = F.conv2d(padded, horizontal, groups=channels)
    return F.conv2d(blurred, vertical, groups=channels)
