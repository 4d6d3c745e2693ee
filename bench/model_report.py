"""Every accuracy figure of the model card from the commands a user runs, in one JSON file.

Runs `crowdstream eval` on both ShanghaiTech parts (the every-5th hold-out with adaptive and auto tiling, and
the zoom sweep: the images shrunk 0.35-0.75× and zoomed crops 1.5-3×; the every-10th hold-out, which no
shipped model ever trained on, for comparison with the previous model), `crowdstream check negatives` and
`crowdstream check demo`, and writes their JSON outputs side by side:

    python bench/model_report.py --model crowd-lite0 -o crowdstream/engines/models/crowd-lite0.metrics.json
    python bench/model_report.py --model crowd-lite0-int8 -o crowdstream/engines/models/crowd-lite0-int8.metrics.json

(`--model default` is the INT8 copy here: commands run on ONNX Runtime.) ShanghaiTech and the check sets'
hold-out crops come from the data root: `--data-root DIR`, else $CROWDSTREAM_DATA.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ZOOMS = ["0.35", "0.5", "0.75", "1.5", "2", "3"]
"""The zoom sweep: below 1 the whole image shrunk (a camera further away), above 1 crops blown up."""
RUNS = {
    "every5-adaptive": ["--every", "5", "--tiles", "adaptive", "--zoom", *ZOOMS],
    "every5-auto": ["--every", "5", "--tiles", "auto"],
    "every10-adaptive": ["--every", "10", "--tiles", "adaptive"],
    "every10-auto": ["--every", "10", "--tiles", "auto"],
}


def crowdstream(*args: str) -> dict:
    """Run one crowdstream command with --json and return its output."""
    result = subprocess.run(
        [sys.executable, "-m", "crowdstream", *args, "--json"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"crowdstream {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout)


def report(model: str, data_root: list[str]) -> dict:
    """`data_root`: ["--data-root", DIR], or [] for $CROWDSTREAM_DATA."""
    figures: dict = {"model": model, "holdout": {}}
    for part in ("A", "B"):
        for name, flags in RUNS.items():
            print(f"part {part}, {name}", file=sys.stderr)
            figures["holdout"][f"{part}/{name}"] = crowdstream(
                "eval", part, "--model", model, *flags, *data_root
            )
    figures["negatives"] = crowdstream("check", "negatives", "--model", model, *data_root)
    figures["demo"] = crowdstream("check", "demo", "--model", model, *data_root)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="default", help="ONNX file or shipped model name")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--data-root", help="folder holding shanghaitech/ (default: $CROWDSTREAM_DATA)")
    args = parser.parse_args()
    figures = report(args.model, ["--data-root", args.data_root] if args.data_root else [])
    args.output.write_text(json.dumps(figures, indent=1) + "\n")
    for key, value in figures["holdout"].items():
        print(
            f"{key:22} MAE {value['mae']:7.2f}  bias {value['bias']:+7.2f}  inputs/image {value['inputs_per_image']:.2f}"
        )


if __name__ == "__main__":
    main()
