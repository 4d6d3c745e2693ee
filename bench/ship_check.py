"""Should this model become the default? Issue 25's rule, as a command: the candidate and the shipped default
on the same images — the every-5th hold-out of both ShanghaiTech parts paired image by image (`crowdstream
eval --baseline`), the camera-like sets and held-out texture families (`crowdstream check cameras`), the
people-free images and portraits (`crowdstream check negatives`) — and the verdict of
`crowdstream.training.ship_rule`: nothing worse, and better on at least one camera-like set.

    crowdstream engine quantize runs/camera9/stage9.onnx --images 128
    python bench/ship_check.py runs/camera9/stage9-int8.onnx -o runs/camera9/ship-check

Compare INT8 with INT8 (the default the service counts with is `crowd-lite0-int8`) and run both on the same
host: the figures move with the CPU (see the model card's "INT8 and the CPU it runs on"). Writes each
command's JSON into OUT and prints one row per figure; exits 0 when the candidate may ship, 1 when not.

`--fp32` also pairs the two INT8 copies' FP32 sources on the hold-out, shown and not judged: a hold-out
change as large as an INT8 copy's own rounding (the shipped copy reads part B 1.4 better than its FP32
source) is told apart from one the training made.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_report import crowdstream  # noqa: E402

from crowdstream.engines.models import resolve_model  # noqa: E402
from crowdstream.training.finetune import trainable_base  # noqa: E402
from crowdstream.training.ship_rule import Figure, check_figures, holdout_figures, ship  # noqa: E402


def saved(out: Path, name: str, *arguments: str) -> dict:
    """`crowdstream ARGUMENTS --json`, its answer also written to OUT/<name>.json."""
    print(f"{name}: {' '.join(arguments)}", file=sys.stderr)
    result = crowdstream(*arguments)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def checks(model: str, out: Path, label: str, data_root: list[str]) -> dict:
    """`check cameras` and `check negatives` of one model (OUT/<label>-<check>.json)."""
    return {
        check: saved(out, f"{label}-{check}", "check", check, "--model", model, *data_root)
        for check in ("cameras", "negatives")
    }


def paired_holdout(candidate: str, default: str, out: Path, label: str, data_root: list[str]) -> dict:
    """`eval A|B --holdout --baseline DEFAULT` of the candidate (OUT/<label>-<part>.json)."""
    models = ["--model", candidate, "--baseline", default, *data_root]
    return {part: saved(out, f"{label}-{part}", "eval", part, "--holdout", *models) for part in ("A", "B")}


def fp32_source(model: str) -> str:
    """The FP32 file an INT8 copy was quantised from (the model itself when it is FP32)."""
    return str(trainable_base(resolve_model(model)))


def print_rows(rows: list[Figure]) -> None:
    for row in rows:
        interval = (
            f"  paired {row.change:+.2f} ({row.change_ci95[0]:+.2f}..{row.change_ci95[1]:+.2f})"
            if row.change_ci95
            else ""
        )
        print(f"{row.name:40} {row.default:9.2f} {row.candidate:9.2f}  {row.verdict}{interval}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("candidate", help="ONNX file or shipped model name")
    parser.add_argument(
        "--default", default="crowd-lite0-int8", help="what it would replace (default: %(default)s)"
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="folder for the commands' JSON")
    parser.add_argument("--data-root", help="folder holding shanghaitech/ (default: $CROWDSTREAM_DATA)")
    parser.add_argument(
        "--fp32", action="store_true", help="also pair the FP32 sources on the hold-out (shown, not judged)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data_root = ["--data-root", args.data_root] if args.data_root else []
    paired = paired_holdout(args.candidate, args.default, args.out, "candidate-holdout", data_root)
    rows = holdout_figures(paired) + check_figures(
        checks(args.default, args.out, "default", data_root),
        checks(args.candidate, args.out, "candidate", data_root),
    )
    print(f"{'figure':40} {'default':>9} {'candidate':>9}  verdict")
    print_rows(rows)
    shipped, why = ship(rows)
    print(("ship: " if shipped else "do not ship: ") + why)
    if args.fp32:
        sources = fp32_source(args.candidate), fp32_source(args.default)
        fp32 = paired_holdout(*sources, args.out, "candidate-fp32-holdout", data_root)
        print(f"FP32 sources, not judged: {sources[0]} against {sources[1]}")
        print_rows([replace(row, name=f"{row.name} (FP32)") for row in holdout_figures(fp32)])
    return 0 if shipped else 1


if __name__ == "__main__":
    sys.exit(main())
