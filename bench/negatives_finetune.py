"""Fine-tune the shipped model on people-free images (issue 11: a grass photo counted 153, gravel 136).

Writes a snapshot folder of people-free images (training.people_free_snapshots: procedural textures at two
zooms and head-free crops of ShanghaiTech training images), then runs the camera fine-tune on it
(training.finetune.run_finetune: decoder + last backbone blocks on the CPU, ShanghaiTech tiles replayed and
anchored to the base model's answers) with replayed people-free tiles trained towards zero. Progress goes to
`<out>/progress.jsonl`, the model to `<out>/crowd-lite0-negatives.onnx` and its report beside it.

With `--annotated` the folder also holds every ShanghaiTech training-split image with its heads, so the point
loss trains on the sharp originals too (stage 4 in the model card, not shipped), and the count head is refitted
afterwards (`<out>/crowd-lite0-negatives-refit.onnx`).

    nice -n 5 python bench/negatives_finetune.py --out runs/negatives/long --minutes 35
    nice -n 5 python bench/negatives_finetune.py --out runs/sharp --minutes 35 --holdout 20 --replay-share 0 \
        --annotated
    nice -n 5 python bench/negatives_finetune.py --out runs/negatives/smoke --minutes 1 --standard-limit 2

On another model than the shipped one (stage 25 of the model card: the long CPU run's model):

    python bench/negatives_finetune.py --out runs/cpu-long/negatives --base runs/cpu-long/run/crowd-lite0.onnx \
        --minutes 15 --replay-weight 6
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from crowdstream.engines.data_root import DATA_ROOT_HELP, resolve_data_root  # noqa: E402
from crowdstream.training.finetune import FinetuneRunConfig, refit_count_head, run_finetune_logged  # noqa: E402
from crowdstream.training.people_free_snapshots import (  # noqa: E402
    ZOOMS,
    link_training_images,
    write_head_free_crops,
    write_textures,
)

OPTIONS: dict[str, tuple[type, object, str]] = {
    "--minutes": (float, 35.0, "training budget"),
    "--standard-limit": (int, None, "standard hold-out images per part (None: all)"),
    "--variants": (int, 3, "textures per family and zoom"),
    "--crops": (int, 40, "head-free training crops per part"),
    "--lr": (float, 1e-4, "peak learning rate"),
    "--replay-share": (float, 0.75, "share of replayed ShanghaiTech tiles"),
    "--replay-weight": (float, 3.0, "weight of replayed tiles' distance from the base model"),
    "--replay-images": (int, 80, "replayed training images per part"),
    "--last-blocks": (int, 3, "backbone blocks trained with the decoder"),
    "--threads": (int, 2, "torch and ONNX Runtime threads"),
    "--seed": (int, 0, "random seed"),
    "--holdout": (int, None, "snapshots held out of training (default a fifth)"),
}
"""Defaults chosen from 3-minute trials (see the commit that added this script and the model card)."""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/negatives"), help="data, model and logs")
    parser.add_argument(
        "--zooms", type=float, nargs="+", default=list(ZOOMS), help=f"texture zooms (default {ZOOMS})"
    )
    for flag, (kind, default, text) in OPTIONS.items():
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    parser.add_argument(
        "--loss",
        choices=("points", "density"),
        default="points",
        help="loss on annotated tiles: the point loss, or the previous Gaussian-map loss (default points)",
    )
    parser.add_argument(
        "--annotated",
        action="store_true",
        help="also train on every ShanghaiTech training-split image with its heads (point loss on the sharp "
        "originals), not only on people-free images",
    )
    parser.add_argument("--base", default="default", help="model to start from (default: the shipped one)")
    parser.add_argument("--data-root", type=Path, help=DATA_ROOT_HELP)
    args = parser.parse_args()
    data_root = resolve_data_root(args.data_root)
    data = args.out / "data"
    if not data.is_dir():
        written = write_textures(data, args.variants, tuple(args.zooms)) + write_head_free_crops(
            data, args.crops, data_root
        )
        if args.annotated:
            written += link_training_images(data, data_root)
        print(f"wrote {len(written)} snapshots to {data}", file=sys.stderr)
    config = FinetuneRunConfig(
        dataset=data,
        out=args.out / "crowd-lite0-negatives.onnx",
        base=args.base,
        minutes=args.minutes,
        standard_limit=args.standard_limit,
        lr=args.lr,
        replay_share=args.replay_share,
        replay_weight=args.replay_weight,
        replay_images=args.replay_images,
        last_blocks=args.last_blocks,
        replay_negatives="zero",
        loss=args.loss,
        threads=args.threads,
        seed=args.seed,
        holdout=args.holdout,
    )
    report = run_finetune_logged(config, args.out / "progress.jsonl")
    keys = ("holdout_mae_before", "holdout_mae_after", "standard_mae_before", "standard_mae_after",
            "standard_images", "minutes", "tiles", "steps", "final_loss")  # fmt: skip
    print(json.dumps({key: report[key] for key in keys}, indent=2))
    if args.annotated:
        refit_head(config.out, data_root)
    return 0


def refit_head(model: Path, data_root: Path) -> Path:
    """With annotated images the point loss moved the raw density the count head was fitted to: refit it."""
    out, coefficients = refit_count_head(model, data_root)
    print(f"count head refitted ({', '.join(f'{c:.4g}' for c in coefficients)}): {out}", file=sys.stderr)
    return out


if __name__ == "__main__":
    sys.exit(main())
