"""Validation accuracy of the shipped model, with and without its count head, for the model card and the
README table. Reads the held-out images (engines.frames.holdout_split of each ShanghaiTech part) and writes
engines/models/crowd-lite0.metrics.json, which `crowdstream bench models` merges into its table.

    python bench/model_report.py runs/crowd-lite0/best.pt
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from engines.engine import load_engine
from engines.frames import DEFAULT_DATA_ROOT, HOLDOUT_EVERY, shanghaitech_part
from engines.models import DEFAULT_MODEL
from training.evaluate import evaluate
from training.export import export_checkpoint
from training.model_bench import ACCURACY_FILE


def holdout_metrics(model: Path, data_root: Path, tiles: str) -> dict:
    engine = load_engine(model)
    report = {}
    for part in ("A", "B"):
        summary = evaluate(
            engine, root=shanghaitech_part(part, data_root), tiles=tiles, every=HOLDOUT_EVERY
        ).summary()
        report[f"part_{part}"] = {
            k: summary[k] for k in ("images", "mae", "rmse", "nae", "bias", "game", "buckets")
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path, help="the training checkpoint the shipped model came from")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--tiles", default="auto")
    args = parser.parse_args()
    results = {"crowd-lite0": holdout_metrics(DEFAULT_MODEL, args.data_root, args.tiles)}
    with tempfile.TemporaryDirectory() as folder:
        for name, head in (("crowd-lite0 (integral)", False), ("crowd-lite0 (count head)", True)):
            path = Path(folder) / f"{head}.onnx"
            export_checkpoint(args.checkpoint, path, use_count_head=head)
            results[name] = holdout_metrics(path, args.data_root, args.tiles)
    ACCURACY_FILE.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: {p: round(v[p]["mae"], 2) for p in v} for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
