"""Reproduce the fine-tuning target of issue 16 (docs/finetune.md): a camera the shipped model gets badly wrong,
5 annotated snapshots, at most 10 minutes of CPU fine-tuning.

Builds the camera's snapshot folder from real annotations (training.camera_demo: one part B scene, zoomed 2.5×
so people are close to the lens), then runs `crowdstream finetune` on it and prints the report's figures.

    python bench/finetune_demo.py --out runs/finetune-demo --minutes 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crowdstream.engines.data_root import DATA_ROOT_HELP, resolve_data_root  # noqa: E402
from crowdstream.training.camera_demo import build_camera  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/finetune-demo"), help="folder for data and model"
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="fine-tuning budget (default 10)")
    parser.add_argument("--holdout", type=int, default=2, help="snapshots held out (default 2 of 5)")
    parser.add_argument("--standard-limit", type=int, help="standard hold-out images per part (default all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", type=Path, help=DATA_ROOT_HELP)
    args, extra = parser.parse_known_args()  # anything else goes to crowdstream finetune as it is
    dataset = args.out / "camera"
    data_root = resolve_data_root(args.data_root)
    build_camera(dataset, data_root)
    command = [
        sys.executable, "-m", "crowdstream.cli", "finetune", str(dataset), "--from", "default",
        "-o", str(args.out / "bund-zoom.onnx"), "--minutes", str(args.minutes), "--holdout", str(args.holdout),
        "--threads", str(args.threads), "--progress", "jsonl", "--data-root", str(data_root),
    ]  # fmt: skip
    command += extra
    if args.standard_limit:
        command += ["--standard-limit", str(args.standard_limit)]
    print("$", " ".join(command), file=sys.stderr)
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if done.returncode or events[-1]["event"] != "done":
        print(events[-1] if events else done.stdout, file=sys.stderr)
        return done.returncode or 1
    report = json.loads(Path(events[-1]["report"]).read_text())
    keys = ("holdout", "holdout_truth", "holdout_predicted_before", "holdout_predicted_after", "holdout_mae_before",
            "holdout_mae_after", "standard_mae_before", "standard_mae_after", "standard_images", "better",
            "minutes", "tiles", "steps")  # fmt: skip
    print(json.dumps({key: report[key] for key in keys}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
