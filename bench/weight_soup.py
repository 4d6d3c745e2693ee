"""Average the weights of two fine-tunes of the same ONNX model ("model soup", WiSE-FT): one file that might
keep what each fine-tune does well at no inference cost. Issue 11: the stage-4 fine-tune on the sharp
originals counts near, large heads better and far, small ones worse than the shipped model; would halfway
between the two do both?

    python bench/weight_soup.py crowd-lite0 runs/sharp/crowd-lite0-negatives.onnx --share 0.5 -o runs/soup.onnx
    python bench/coarse_pass.py --model runs/soup.onnx --split holdout --bands

Every float initialiser that differs becomes (1 − share) × first + share × second; the count head stays the
first model's (refit it with training.calibrate if the density level moved). Both files must share one graph
(a fine-tune by `training.finetune` keeps its base model's graph and names).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from crowdstream.engines.errors import EngineError  # noqa: E402
from crowdstream.engines.models import resolve_model  # noqa: E402
from crowdstream.training.calibrate import COEFFICIENTS  # noqa: E402
from crowdstream.training.onnx_weights import write_tuned  # noqa: E402


def initialisers(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def soup(first: dict[str, np.ndarray], second: dict[str, np.ndarray], share: float) -> dict[str, np.ndarray]:
    """The mixed tensors (only those that differ), by name; the count head is left alone."""
    if first.keys() != second.keys():
        raise ValueError("the two models do not share one graph (their initialisers differ by name)")
    return {
        name: (1 - share) * value.astype(np.float64) + share * second[name].astype(np.float64)
        for name, value in first.items()
        if name != COEFFICIENTS and value.dtype.kind == "f" and not np.array_equal(value, second[name])
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("first", help="base model: a name (crowd-lite0) or an ONNX path")
    parser.add_argument("second", help="a fine-tune of it")
    parser.add_argument("--share", type=float, default=0.5, help="weight of the second model (default 0.5)")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    if not 0 <= args.share <= 1:
        parser.error("--share must be between 0 and 1")
    try:
        first, second = resolve_model(args.first), resolve_model(args.second)
        mixed = soup(initialisers(first), initialisers(second), args.share)
    except (EngineError, ValueError) as error:
        parser.error(str(error))
    write_tuned(first, args.out, mixed)
    print(f"{len(mixed)} tensors mixed at share {args.share:g}: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
