"""Would a coarser (zoomed-out) second pass count large, near heads better? Issue 11's lever 3, measured.

Adaptive tiling only ever looks closer. Heads near the lens are under-counted (zoomed crops read 10-40 % low),
so this experiment adds the opposite pass: the frame cut into tiles of twice the `auto` side (a 1024×768
frame into one tile: heads half as large), and keeps, in every cell of a grid twice as fine as the `auto`
tiles, the larger of the two passes' counts ("max"), or the larger but at most 1.25× the adaptive pass's
("max ≤1.25×": the coarse pass may correct a count, not create one from empty ground). It reports MAE, bias
and bias per crowd-size bucket for `adaptive` with and without the coarse pass, on a training subset (every
4th training-split image, never the hold-out) or the every-5th hold-out, whole or as zoomed crops (the
centre and a head-centred crop, as `crowdstream eval --zoom`):

    python bench/coarse_pass.py --model crowd-lite0 --split train
    python bench/coarse_pass.py --model crowd-lite0-int8 --split holdout --zoom 2
    python bench/coarse_pass.py --model crowd-lite0 --split train --bands   # why: counts by image band

The result (model card, "Tried and not shipped"): it lifts part B and the zoomed crops but over-counts
sparse scenes and part A, so it is not the stream's tiling.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crowdstream.engines.counting import FrameCount, count_frames
from crowdstream.engines.data_root import DATA_ROOT_HELP, resolve_data_root
from crowdstream.engines.engine import Engine, load_engine
from crowdstream.engines.errors import EngineError
from crowdstream.engines.frames import holdout_split, image_files, read_frame, shanghaitech_part
from crowdstream.engines.spec import TILE_TARGET_SIDE
from crowdstream.training.annotations import load_any
from crowdstream.training.evaluate import Scene
from crowdstream.training.metrics import bias_percent, errors_by_bucket, mae
from crowdstream.training.zoom import CROPS, check_zoom, zoom_scene

COARSE_SIDE = 2 * TILE_TARGET_SIDE
CELLS_PER_TILE = 2
"""Cells per `auto` tile side in which the larger pass's count is kept."""
CAPS: dict[str, float | None] = {"max": None, "max ≤1.25×": 1.25}
"""How far the coarse pass may raise a cell's count, as a multiple of the adaptive pass's (None: no limit)."""


def cell_counts(density: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """People in each cell of a rows×cols grid over a density map."""
    ys = np.linspace(0, density.shape[0], rows + 1).astype(int)
    xs = np.linspace(0, density.shape[1], cols + 1).astype(int)
    return np.add.reduceat(np.add.reduceat(density, ys[:-1], axis=0), xs[:-1], axis=1)


def coarse_tiles(height: int, width: int) -> tuple[int, int]:
    """The coarse pass's grid: tiles of about twice the `auto` side."""
    return max(1, round(height / COARSE_SIDE)), max(1, round(width / COARSE_SIDE))


def with_coarse_pass(engine: Engine, frame: np.ndarray, fine: FrameCount) -> dict[str, tuple[float, int]]:
    """(count, inputs) per rule in CAPS, combining `fine` with a pass at twice the `auto` tile side."""
    grid = fine.grid
    coarse_grid = coarse_tiles(grid.height, grid.width)
    if coarse_grid == (grid.rows, grid.cols):
        return {name: (fine.count, fine.inputs) for name in CAPS}
    (coarse,) = count_frames(engine, [frame], tiles=coarse_grid)
    rows, cols = CELLS_PER_TILE * grid.rows, CELLS_PER_TILE * grid.cols
    fine_cells, coarse_cells = cell_counts(fine.density, rows, cols), cell_counts(coarse.density, rows, cols)
    return {
        name: (float(keep_larger(fine_cells, coarse_cells, cap).sum()), fine.inputs + coarse.grid.count)
        for name, cap in CAPS.items()
    }


def keep_larger(fine: np.ndarray, coarse: np.ndarray, cap: float | None) -> np.ndarray:
    """Per cell the larger count, the coarse one held at most at `cap` × the fine one."""
    return np.maximum(fine, coarse if cap is None else np.minimum(coarse, cap * fine))


def band_ratios(
    engine: Engine, items: list[Scene], tiles: str | tuple[int, int], bands: int = 4
) -> np.ndarray:
    """Counted over annotated people in each horizontal band of the images, top (far) to bottom (near)."""
    counted, annotated = np.zeros(bands), np.zeros(bands)
    for scene in items:
        grid = tiles if tiles != "coarse" else coarse_tiles(scene.image.shape[0], scene.image.shape[1])
        (result,) = count_frames(engine, [scene.image], tiles=grid)
        counted += cell_counts(result.density, bands, 1)[:, 0]
        rows = np.clip((scene.points[:, 1] * bands / scene.image.shape[0]).astype(int), 0, bands - 1)
        annotated += np.bincount(rows, minlength=bands)
    return counted / np.maximum(annotated, 1)


def scenes(paths: list[Path], zoom: float) -> list[Scene]:
    """The images as scenes, or each image's zoomed crops."""
    whole = [Scene(path.stem, read_frame(path), load_any(path).points.astype(np.float32)) for path in paths]
    return whole if zoom == 1 else [zoom_scene(scene, zoom, crop) for scene in whole for crop in CROPS]


def evaluate(engine: Engine, items: list[Scene]) -> dict[str, tuple[list[float], list[int]]]:
    """Counts and inputs per scene: adaptive tiling alone and with the coarse pass under each rule."""
    variants: dict[str, tuple[list[float], list[int]]] = {}
    for scene in tqdm(items, unit="img", leave=False):
        (fine,) = count_frames(engine, [scene.image], tiles="adaptive")
        rows = {"adaptive": (fine.count, fine.inputs)}
        rows.update(
            {f"+ coarse, {rule}": row for rule, row in with_coarse_pass(engine, scene.image, fine).items()}
        )
        for name, (count, inputs) in rows.items():
            variants.setdefault(name, ([], []))[0].append(count)
            variants[name][1].append(inputs)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="crowd-lite0")
    parser.add_argument("--split", choices=("train", "holdout"), default="train")
    parser.add_argument("--zoom", type=float, default=1.0, help="count zoomed crops (above 1) instead")
    parser.add_argument(
        "--bands", action="store_true", help="counted / annotated by image quarter, far to near"
    )
    parser.add_argument("--data-root", type=Path, help=DATA_ROOT_HELP)
    args = parser.parse_args()
    data_root = resolve_data_root(args.data_root)
    if args.zoom != 1:
        try:
            check_zoom(args.zoom)
        except ValueError as error:
            parser.error(str(error))
    try:
        engine = load_engine(args.model)
    except EngineError as error:
        parser.error(str(error))
    for part in "AB":
        training, holdout = holdout_split(image_files(shanghaitech_part(part, data_root) / "images"))
        items = scenes(holdout if args.split == "holdout" else training[1::4], args.zoom)
        truth = [scene.count for scene in items]
        print(f"part {part}, {args.split}, zoom {args.zoom:g}, {len(items)} images, model {args.model}")
        if args.bands:
            for tiles in ("auto", "coarse"):
                ratios = " ".join(f"{r:.3f}" for r in band_ratios(engine, items, tiles))
                print(f"  {tiles:8s} counted / annotated, far to near: {ratios}")
            continue
        for name, (counts, inputs) in evaluate(engine, items).items():
            buckets = " ".join(
                f"{bucket} {row['bias_pct']:+.1f}% ({row['images']})"
                for bucket, row in errors_by_bucket(counts, truth).items()
            )
            print(
                f"  {name:22s} MAE {mae(counts, truth):6.2f}  bias {bias_percent(counts, truth):+5.1f}%  "
                f"inputs {np.mean(inputs):.2f}  | {buckets}"
            )


if __name__ == "__main__":
    main()
