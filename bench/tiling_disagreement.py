"""Which self-check figure tells a wrong count from a right one? Each figure's AUC (the chance that an image
with a large error scores above one with a small error; 0.5 is a coin) on the hold-out photographs of both
ShanghaiTech parts and the camera-like check sets, for the figures `engines.uncertainty` has or could have:

- `spread`: the two tilings' totals apart (what the self-check flags above 0.2);
- `cells4`, `cells8`: where the two tilings' density maps disagree, their L1 difference over a 4×4 / 8×8 grid
  of cells relative to the count (errors of opposite sign in different places do not cancel);
- `softness`: 1 − the detail ratio (the self-check flags a detail ratio under 0.55).

Large and small errors as issue 25 defines them (above max(3, 30 %), within max(1, 10 %); training.metrics).

    python bench/tiling_disagreement.py --sets ~/.cache/crowdstream/camera-checks [--model M]

The sets folder is `crowdstream check cameras --sets`'s (written there first if missing or stale).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crowdstream.engines.counting import count_frames  # noqa: E402
from crowdstream.engines.data_root import DATA_ROOT_HELP, resolve_data_root  # noqa: E402
from crowdstream.engines.engine import load_engine  # noqa: E402
from crowdstream.engines.spec import Engine  # noqa: E402
from crowdstream.engines.uncertainty import count_spread, detail_ratio, finer_tiles  # noqa: E402
from crowdstream.training.annotations import list_dataset, load_any  # noqa: E402
from crowdstream.training.camera_checks import sets_current, write_check_sets  # noqa: E402
from crowdstream.training.camera_sets import split_samples  # noqa: E402
from crowdstream.training.metrics import large_error, small_error  # noqa: E402

FIGURES = ("spread", "cells4", "cells8", "softness")
SET_FOLDERS = {
    "elevated": "elevated",
    "elevated_masked": "elevated_masked",
    "degraded": "degraded",
    "night_B": "night",
}


def cell_disagreement(first: np.ndarray, second: np.ndarray, cells: int) -> float:
    """L1 difference of two density maps summed over a cells × cells grid, relative to the larger total
    (at least 3 people). Both maps are of the same frame at the same scale, so of the same shape.

    >>> left, right = np.zeros((8, 8)), np.zeros((8, 8))
    >>> left[0, 0] = right[7, 7] = 5.0  # the same count in opposite corners
    >>> cell_disagreement(left, right, 2)
    2.0
    """
    a, b = (_cell_sums(m.astype(np.float32), cells) for m in (first, second))
    return float(np.abs(a - b).sum() / max(a.sum(), b.sum(), 3.0))


def _cell_sums(density: np.ndarray, cells: int) -> np.ndarray:
    height, width = density.shape
    return cv2.resize(density, (cells, cells), interpolation=cv2.INTER_AREA) * (height * width / cells**2)


def auc(high: list[float], low: list[float]) -> float | None:
    """P(a figure of `high` > one of `low`), ties counting half; None when either is empty.

    >>> auc([3.0, 4.0], [1.0, 3.0])
    0.875
    """
    if not high or not low:
        return None
    pairs = np.subtract.outer(np.asarray(high), np.asarray(low))
    return float((pairs > 0).mean() + 0.5 * (pairs == 0).mean())


def figures(engine: Engine, image: np.ndarray) -> tuple[float, dict[str, float]]:
    """The first count and each self-check figure of one image."""
    (first,) = count_frames(engine, [image], "adaptive")
    (second,) = count_frames(engine, [image], finer_tiles(first), first.scale)
    return first.count, {
        "spread": count_spread(first.count, second.count),
        "cells4": cell_disagreement(first.density, second.density, 4),
        "cells8": cell_disagreement(first.density, second.density, 8),
        "softness": 1.0 - detail_ratio(image),
    }


def images(data_root: Path, sets: Path) -> Iterator[tuple[str, np.ndarray, int]]:
    """(set, image, truth) of the hold-out photographs and the camera-like check sets."""
    for part in ("A", "B"):
        for sample in split_samples(data_root, part, "holdout"):
            yield f"holdout_{part}", sample.load_image(), sample.count
    for name, folder in SET_FOLDERS.items():
        for path in list_dataset(sets / folder):
            sample = load_any(path)
            yield name, sample.load_image(), sample.count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", type=Path, default=Path.home() / ".cache" / "crowdstream" / "camera-checks")
    parser.add_argument("--data-root", help=DATA_ROOT_HELP)
    parser.add_argument("--model", default="default", help="model name or file (default: the shipped one)")
    args = parser.parse_args()
    data_root = resolve_data_root(args.data_root)
    if not sets_current(args.sets):
        write_check_sets(args.sets, data_root)
    engine = load_engine(args.model)
    large: dict[str, dict[str, list[float]]] = {}
    small: dict[str, dict[str, list[float]]] = {}
    for name, image, truth in images(data_root, args.sets):
        count, values = figures(engine, image)
        kind = large if large_error(count, truth) else small if small_error(count, truth) else None
        for group in ("all", "photographs" if name.startswith("holdout") else "camera-like"):
            if kind is not None:
                for figure, value in values.items():
                    kind.setdefault(group, {}).setdefault(figure, []).append(value)
    print(f"{'images':<12} {'large':>6} {'small':>6} " + " ".join(f"{f:>9}" for f in FIGURES))
    for group in ("all", "photographs", "camera-like"):
        high, low = large.get(group, {}), small.get(group, {})
        scores = [auc(high.get(f, []), low.get(f, [])) for f in FIGURES]
        cells = " ".join(f"{'-' if s is None else f'{s:.2f}':>9}" for s in scores)
        print(f"{group:<12} {len(high.get('spread', [])):>6} {len(low.get('spread', [])):>6} {cells}")


if __name__ == "__main__":
    main()
