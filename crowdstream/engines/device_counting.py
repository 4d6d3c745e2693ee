"""`count_frames` on the model's device: frames go up once as uint8, only counts and small maps come back.

The CPU path (engines.preprocess + engines.counting) cuts tiles with OpenCV, which on a GPU machine
leaves the GPU waiting for the CPU. Here the same steps run in torch on the engine's device:

1. frames of one size are stacked into pinned memory and copied up, a model batch's worth at a time;
2. every tile of every frame is cut and resized by two matrix products per frame (the weight
   matrices of engines.resize_weights reproduce cv2.resize's area averaging and bilinear
   coefficients), rounded to whole grey levels as OpenCV's uint8 output is, then flipped to RGB and
   standardised;
3. the tiles of those frames run through the model in one call of at most `max_batch` tiles;
4. tile density maps are stitched into a frame map by two more products, each tile's part clamped and
   rescaled to the tile's own integral exactly as engines.preprocess.stitch does;
5. with adaptive tiling (the default), the refinement windows are cut from the frames still on the
   device and counted in one more batched pass (engines.adaptive picks them from the small tile maps).

The same code runs with device=cpu, which is how CI checks it against the OpenCV path
(tests/test_device_counting.py). Matrices are cached per frame size, tile grid and map scale. Only
engines.torch_engine imports this module, after checking that torch is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from crowdstream.engines.adaptive import refinement_windows
from crowdstream.engines.counting import DENSITY_SCALE, FrameCount, place_window
from crowdstream.engines.preprocess import TileGrid, as_bgr, parse_tiles, plan_tiles
from crowdstream.engines.resize_weights import grid_weights, paste_weights, resize_kind
from crowdstream.engines.spec import DEFAULT_TILES, INPUT_SIZE, OUTPUT_SIZE, PIXEL_MEAN, PIXEL_STD

FLOAT_CHUNK_BYTES = 1 << 29
"""Frames are resized in chunks whose float32 copy stays under this many bytes (512 MiB)."""
MAX_PLANS = 64
"""Frame sizes × tile settings whose matrices stay cached (a worker meets a handful)."""


@dataclass(frozen=True)
class Resize:
    """One mosaic product `rows @ X @ cols_t` and which tiles take their result (None: all of them)."""

    rows: torch.Tensor
    cols_t: torch.Tensor
    tiles: torch.Tensor | None


@dataclass(frozen=True)
class FramePlan:
    """Everything about one frame size, tile grid and map scale that does not depend on the pixels."""

    grid: TileGrid
    map_size: tuple[int, int]
    cut: list[Resize]
    paste: list[Resize]
    block_rows: torch.Tensor  # (rows, map height): 1 where a map row belongs to a tile row
    block_cols: torch.Tensor  # (map width, cols)
    block_area: torch.Tensor  # (rows, cols): map pixels of each tile


@dataclass(frozen=True)
class Chunk:
    """Frames of one size counted in one model call: their indices in the call, and on the device their
    pixels, tile density maps, frame maps and counts."""

    members: list[int]
    plan: FramePlan
    pixels: torch.Tensor
    density: torch.Tensor
    maps: torch.Tensor
    counts: torch.Tensor


def _edges(total: int, parts: int) -> np.ndarray:
    return np.linspace(0, total, parts + 1).round().astype(int)


def _resizes(kinds: np.ndarray, row_edges, col_edges, size: int, build, device) -> list[Resize]:
    """One Resize per distinct kind among the tiles; usually every tile of a grid has the same kind."""
    resizes = []
    distinct = sorted(set(kinds.ravel().tolist()))
    for kind in distinct:
        rows = build(row_edges, size, [kind] * (len(row_edges) - 1))
        cols = build(col_edges, size, [kind] * (len(col_edges) - 1))
        tiles = None if len(distinct) == 1 else torch.from_numpy(np.flatnonzero(kinds == kind)).to(device)
        resizes.append(Resize(_tensor(rows, device), _tensor(cols.T, device), tiles))
    return resizes


def _membership(edges: np.ndarray) -> np.ndarray:
    """(parts, edges[-1]): 1 where a line of the map belongs to part i."""
    lines = np.arange(edges[-1])
    return (lines >= edges[:-1, None]) & (lines < edges[1:, None])


def _tensor(array: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)


def make_plan(height: int, width: int, tiles, scale: float, device) -> FramePlan:
    grid = plan_tiles(height, width, tiles)
    ys, xs = grid.row_edges, grid.col_edges
    heights, widths = np.diff(ys)[:, None], np.diff(xs)[None, :]
    size = INPUT_SIZE
    cut_kinds = np.vectorize(lambda h, w: resize_kind(h, w, size, size, h * w > size * size))(heights, widths)
    map_h, map_w = max(1, round(height * scale)), max(1, round(width * scale))
    map_ys, map_xs = _edges(map_h, grid.rows), _edges(map_w, grid.cols)
    tile_h, tile_w = np.diff(map_ys)[:, None], np.diff(map_xs)[None, :]
    side = OUTPUT_SIZE
    paste_kinds = np.vectorize(lambda h, w: resize_kind(side, side, h, w, h * w < side * side))(
        tile_h, tile_w
    )
    return FramePlan(
        grid,
        (map_h, map_w),
        _resizes(cut_kinds, ys, xs, size, grid_weights, device),
        _resizes(paste_kinds, map_ys, map_xs, side, paste_weights, device),
        _tensor(_membership(map_ys), device),
        _tensor(_membership(map_xs).T, device),
        _tensor(tile_h * tile_w, device),
    )


class DeviceCounter:
    """Counts frames with `run` (a (N, 3, 224, 224) float32 device batch → density (N, 1, 56, 56) and
    count (N,) float32 on the device) doing all the pixel work on `device`."""

    def __init__(self, run: Callable, device) -> None:
        self.run = run
        self.device = torch.device(device)
        self.mean = _tensor(PIXEL_MEAN.reshape(1, 3, 1, 1), self.device)
        self.std = _tensor(PIXEL_STD.reshape(1, 3, 1, 1), self.device)
        self.plans: dict[tuple, FramePlan] = {}
        self.staging: torch.Tensor | None = None

    def plan(self, height: int, width: int, tiles, scale: float) -> FramePlan:
        key = (height, width, tiles if isinstance(tiles, str) else tuple(tiles), scale)
        if key not in self.plans:
            if len(self.plans) >= MAX_PLANS:
                self.plans.pop(next(iter(self.plans)))
            self.plans[key] = make_plan(height, width, tiles, scale, self.device)
        return self.plans[key]

    def count(
        self,
        frames: list[np.ndarray],
        tiles: str | tuple[int, int] = DEFAULT_TILES,
        scale: float = DENSITY_SCALE,
        max_batch: int = 32,
    ) -> list[FrameCount]:
        """The results of engines.counting.count_frames, in the order of `frames`.

        Frames of one size go in chunks of one model call each (`max_batch` tiles). Every GPU step is
        queued without waiting, so while the GPU works on one chunk the CPU already copies the next into
        pinned memory; the first read-back waits for all of them. With adaptive tiling the refinement
        windows are then chosen from the first pass's tile maps (engines.adaptive, on the CPU: they are
        small), cut from the frames still on the device and counted in a second batched pass."""
        if not frames:
            return []
        frames = [as_bgr(f) for f in frames]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, frame in enumerate(frames):
            groups.setdefault(frame.shape[:2], []).append(index)
        self.reserve(sum(f.nbytes for f in frames))
        chunks, offset = [], 0
        for shape, members in groups.items():
            plan = self.plan(*shape, tiles, scale)
            step = max(1, max_batch // plan.grid.count)
            for start in range(0, len(members), step):
                chunk = members[start : start + step]
                pixels, offset = self.upload([frames[i] for i in chunk], offset)
                density, count = self.infer(self.cut(pixels, plan), max_batch)
                counts = count.view(len(chunk), plan.grid.count).sum(1)
                chunks.append(
                    Chunk(chunk, plan, pixels, density, self.stitch(density, plan, len(chunk)), counts)
                )
        results: list[FrameCount | None] = [None] * len(frames)
        for c in chunks:
            for index, frame_map, frame_count in zip(
                c.members, c.maps.cpu().numpy(), c.counts.cpu().numpy(), strict=True
            ):
                results[index] = FrameCount(frame_map, float(frame_count), c.plan.grid, scale)
        if parse_tiles(tiles) == "adaptive":
            self.refine(chunks, results, scale, max_batch)
        return results

    def refine(self, chunks: list[Chunk], results: list[FrameCount], scale: float, max_batch: int) -> None:
        """crowdstream.engines.counting's second pass: each frame's refinement windows counted at twice the
        resolution and put in place of the first pass inside them (engines.counting.place_window)."""
        placed, crops = [], []
        for c in chunks:
            side = OUTPUT_SIZE
            tile_maps = c.density.view(len(c.members), c.plan.grid.count, side, side).cpu().numpy()
            for position, index in enumerate(c.members):
                results[index].windows = refinement_windows(c.plan.grid, tile_maps[position])
                for window in results[index].windows:
                    placed.append((results[index], window))
                    crops.append(c.pixels[position, window.y0 : window.y1, window.x0 : window.x1])
        if not crops:
            return
        density, _ = self.infer(self.cut_crops(crops, scale), max_batch)
        for (result, window), window_map in zip(placed, density.cpu().numpy(), strict=True):
            result.count += place_window(result.density, window, window_map, result.scale)

    def cut_crops(self, crops: list[torch.Tensor], scale: float) -> torch.Tensor:
        """(h, w, 3) uint8 crops of any sizes → (N, 3, 224, 224) model inputs, in order; crops of one
        size are resized together as one-tile frames."""
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, crop in enumerate(crops):
            by_size.setdefault(tuple(crop.shape[:2]), []).append(index)
        out = torch.empty(len(crops), 3, INPUT_SIZE, INPUT_SIZE, device=self.device)
        for (height, width), members in by_size.items():
            stacked = torch.stack([crops[i] for i in members])
            out[members] = self.cut(stacked, self.plan(height, width, (1, 1), scale))
        return out

    def reserve(self, nbytes: int) -> None:
        """Pinned host memory for `nbytes` of frames (CUDA only). The previous call's copies have finished
        (its results were read back), so the buffer is reused; a larger one replaces it."""
        if self.device.type == "cuda" and (self.staging is None or self.staging.numel() < nbytes):
            self.staging = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)

    def upload(self, frames: list[np.ndarray], offset: int = 0) -> tuple[torch.Tensor, int]:
        """Frames of one size as a (B, H, W, 3) uint8 tensor on the device, and the next free offset of
        the pinned buffer: on CUDA the frames are stacked at `offset` (see `reserve`) and copied up
        asynchronously at full PCIe speed."""
        if self.device.type != "cuda":
            return torch.from_numpy(np.stack(frames)), offset
        size = sum(f.nbytes for f in frames)
        view = self.staging.numpy()[offset : offset + size].reshape(len(frames), *frames[0].shape)
        np.stack(frames, out=view)
        pixels = self.staging[offset : offset + size].to(self.device, non_blocking=True)
        return pixels.view(view.shape), offset + size

    def cut(self, pixels: torch.Tensor, plan: FramePlan) -> torch.Tensor:
        """(B, H, W, 3) uint8 BGR → (B * tiles, 3, 224, 224) float32 RGB, standardised."""
        batch, height, width, _ = pixels.shape
        step = max(1, FLOAT_CHUNK_BYTES // (height * width * 3 * 4))
        return torch.cat([self._cut_chunk(pixels[i : i + step], plan) for i in range(0, batch, step)])

    def _cut_chunk(self, pixels: torch.Tensor, plan: FramePlan) -> torch.Tensor:
        batch, height, width, _ = pixels.shape
        rows, cols, size = plan.grid.rows, plan.grid.cols, INPUT_SIZE
        flat = pixels.reshape(batch, height, width * 3).float()
        out = torch.empty(batch, rows * cols, 3, size, size, device=self.device)
        for resize in plan.cut:
            tall = torch.matmul(resize.rows, flat).view(batch, rows * size, width, 3).permute(0, 3, 1, 2)
            mosaic = torch.matmul(tall, resize.cols_t)  # (B, 3, rows * S, cols * S)
            tiles = mosaic.view(batch, 3, rows, size, cols, size).permute(0, 2, 4, 1, 3, 5)
            tiles = tiles.reshape(batch, rows * cols, 3, size, size)
            if resize.tiles is None:
                out.copy_(tiles)
            else:
                out[:, resize.tiles] = tiles[:, resize.tiles]
        levels = torch.floor(out + 0.5).clamp_(0, 255)  # OpenCV's uint8 result, rounded half up
        return ((levels.flip(2).reshape(-1, 3, size, size) - self.mean) / self.std).contiguous()

    def infer(self, batch: torch.Tensor, max_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [self.run(batch[i : i + max_batch]) for i in range(0, len(batch), max_batch)]
        return torch.cat([d[:, 0] for d, _ in parts]), torch.cat([c for _, c in parts])

    def stitch(self, density: torch.Tensor, plan: FramePlan, frames: int) -> torch.Tensor:
        """(frames * tiles, 56, 56) tile maps → (frames, map height, map width), per tile as
        engines.preprocess.resize_density: clamped at zero, rescaled to the tile's own integral."""
        rows, cols, side = plan.grid.rows, plan.grid.cols, OUTPUT_SIZE
        tiles = density.view(frames, rows, cols, side, side)
        mosaic = tiles.permute(0, 1, 3, 2, 4).reshape(frames, rows * side, cols * side)
        frame_map = torch.zeros(frames, *plan.map_size, device=self.device)
        for resize in plan.paste:
            pasted = resize.rows @ mosaic @ resize.cols_t
            frame_map += pasted if resize.tiles is None else pasted * self._mask(plan, resize.tiles)
        frame_map.clamp_(min=0)
        totals = tiles.sum((-1, -2))
        current = plan.block_rows @ frame_map @ plan.block_cols
        factor = torch.where(current > 0, totals / current.clamp_min(1e-30), torch.zeros_like(totals))
        spread = (current <= 0) & (totals > 0) & (plan.block_area > 0)
        even = torch.where(spread, totals / plan.block_area.clamp_min(1), torch.zeros_like(totals))
        return frame_map * self._expand(plan, factor) + self._expand(plan, even)

    @staticmethod
    def _expand(plan: FramePlan, per_tile: torch.Tensor) -> torch.Tensor:
        """(frames, rows, cols) → (frames, map height, map width), each tile's value over its block."""
        return plan.block_rows.T @ per_tile @ plan.block_cols.T

    def _mask(self, plan: FramePlan, tiles: torch.Tensor) -> torch.Tensor:
        chosen = torch.zeros(plan.grid.count, device=self.device)
        chosen[tiles] = 1.0
        return self._expand(plan, chosen.view(1, plan.grid.rows, plan.grid.cols))
