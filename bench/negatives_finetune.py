"""Fine-tune the shipped model on people-free images (issue 11: a grass photo counted 153, gravel 136).

Writes a snapshot folder of people-free images (training.people_free_snapshots: procedural textures at three
zooms and head-free crops of ShanghaiTech training images), then runs the camera fine-tune on it
(training.finetune.run_finetune: decoder + last backbone blocks on the CPU, ShanghaiTech tiles replayed and
anchored to the base model's answers) with replayed people-free tiles trained towards zero. Progress goes to
`<out>/progress.jsonl`, the model to `<out>/crowd-lite0-negatives.onnx` and its report beside it.

    nice -n 5 python bench/negatives_finetune.py --out runs/negatives --minutes 35
    nice -n 5 python bench/negatives_finetune.py --out runs/negatives/smoke --minutes 1 --standard-limit 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.finetune import FinetuneConfig, run_finetune  # noqa: E402
from training.people_free_snapshots import write_head_free_crops, write_textures  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/negatives"), help="folder for data, model, logs"
    )
    parser.add_argument("--minutes", type=float, default=35.0, help="training budget (default 35)")
    parser.add_argument("--standard-limit", type=int, help="standard hold-out images per part (default all)")
    parser.add_argument("--variants", type=int, default=3, help="textures per family and zoom (default 3)")
    parser.add_argument(
        "--crops", type=int, default=40, help="head-free training crops per part (default 40)"
    )
    parser.add_argument(
        "--zooms", type=float, nargs="+", default=[2.0, 1.0], help="texture zooms (default 2 1)"
    )
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--replay-share", type=float, default=0.75)
    parser.add_argument("--replay-weight", type=float, default=3.0)
    parser.add_argument("--replay-images", type=int, default=80, help="replayed training images per part")
    parser.add_argument("--last-blocks", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = args.out / "data"
    if not data.is_dir():
        written = write_textures(data, args.variants, tuple(args.zooms)) + write_head_free_crops(
            data, args.crops
        )
        print(f"wrote {len(written)} people-free snapshots to {data}", file=sys.stderr)
    config = FinetuneConfig(
        dataset=data,
        out=args.out / "crowd-lite0-negatives.onnx",
        minutes=args.minutes,
        standard_limit=args.standard_limit,
        lr=args.lr,
        replay_share=args.replay_share,
        replay_weight=args.replay_weight,
        replay_images=args.replay_images,
        last_blocks=args.last_blocks,
        replay_negatives="zero",
        threads=args.threads,
        seed=args.seed,
    )
    with (args.out / "progress.jsonl").open("a") as log:
        started = time.time()

        def emit(event: dict) -> None:
            log.write(json.dumps({"t": round(time.time() - started, 1), **event}) + "\n")
            log.flush()

        report = run_finetune(config, emit)
    keys = ("holdout_mae_before", "holdout_mae_after", "standard_mae_before", "standard_mae_after",
            "standard_images", "minutes", "tiles", "steps", "final_loss")  # fmt: skip
    print(json.dumps({key: report[key] for key in keys}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
