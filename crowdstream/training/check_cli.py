"""`crowdstream check negatives|demo`: fixed check sets that tell whether counts can be trusted where
the annotated hold-out cannot: scenes with nobody in them, a one-person portrait, and the bundled demo clip
scene by scene against its source images' annotations.

Only argparse definitions live at module level; the engines and data code load inside the handlers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crowdstream.commands import Subcommands
from crowdstream.engines.data_root import DATA_ROOT_ENV, DATA_ROOT_HELP, resolve_data_root
from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.frames import shanghaitech_part
from crowdstream.training.eval_cli import RAW, add_engine_options, check_every, open_engine, show_progress


def register(commands: Subcommands) -> None:
    check = commands.add_parser(
        "check",
        formatter_class=RAW,
        help="check sets: people-free images and portraits, the demo clip scene by scene",
        description="Fixed check sets for the counts an operator sees at a glance (use --json for machines).",
        epilog="examples:\n  crowdstream check negatives\n  crowdstream check demo --json",
    )
    checks = check.add_subparsers(dest="check_command", metavar="CHECK", title="checks")
    check.set_defaults(handler=lambda _args: check.print_help() or 2)
    negatives = checks.add_parser(
        "negatives",
        formatter_class=RAW,
        help="count people-free images (target: < 1 per 512x512 on average, none above 3) and portraits",
        description="Count a fixed set of images with nobody in them and report every image's count and its\n"
        "count per 512x512: scikit-image's sample photographs (grass, gravel, brick, rocket, coffee, ...),\n"
        "synthetic textures (training.textures: gravel, grass, bricks, tiles, cobblestones, foliage) and, from\n"
        "each ShanghaiTech hold-out image, the largest square with no annotated head within 64 px. Portraits\n"
        "of one person (scikit-image's astronaut and camera, matplotlib's grace_hopper) are checked apart,\n"
        "with truth 1. These package images are for checks only, never for training. Without a data root\n"
        "the hold-out crops are left out, and the report says so.",
        epilog="examples:\n  crowdstream check negatives\n"
        "  crowdstream check negatives --model runs/new/crowd-lite0.onnx --json --save /tmp/negatives",
    )
    add_engine_options(negatives)
    negatives.add_argument("--data-root", type=Path, help=DATA_ROOT_HELP)
    negatives.add_argument(
        "--every",
        type=int,
        default=10,
        metavar="N",
        help="crop the hold-out of every N-th image (default 10)",
    )
    negatives.add_argument(
        "--save", type=Path, metavar="DIR", help="also write every check image here as PNG"
    )
    negatives.set_defaults(handler=_negatives)
    demo = checks.add_parser(
        "demo",
        formatter_class=RAW,
        help="count the bundled demo clip shot by shot against its source images' annotations",
        description="Decode frames of the demo clip (8 shots, each a slow pan and zoom over one ShanghaiTech\n"
        "part B image, see crowdstream/training/demo_clip.py) and compare each frame's count with the annotated heads its\n"
        "window shows. Cross-faded frames are skipped.",
        epilog="example:\n  crowdstream check demo --per-shot 5",
    )
    add_engine_options(demo)
    demo.add_argument(
        "--clip", type=Path, help="the clip (default: the bundled crowdstream/stream/demo/crowd-demo.mp4)"
    )
    demo.add_argument(
        "--images",
        type=Path,
        help="the source images, beside ../ground-truth (default: part B's train_data/images under the data root)",
    )
    demo.add_argument("--data-root", type=Path, help=DATA_ROOT_HELP)
    demo.add_argument(
        "--per-shot", type=int, default=5, metavar="N", help="frames scored per shot (default 5)"
    )
    demo.set_defaults(handler=_demo)
    cameras = checks.add_parser(
        "cameras",
        formatter_class=RAW,
        help="camera-like checks from hold-out images: elevated views, degraded and night frames, unseen "
        "texture families",
        description="Score the model on cameras it was never trained on, built from hold-out images only\n"
        "(crowdstream/training/camera_checks.py): synthetic elevated views of hold-out part B people on\n"
        "hold-out backgrounds (also painted black outside a counting region), every hold-out image of parts\n"
        "A and B shrunk to 640 px wide with JPEG 30 and blur, every hold-out image of part B as an infrared\n"
        "camera records it at night (grey, dark, noisy), and people-free textures of families never\n"
        "trained against (braids, cracked mud, cobwebs, cross-hatching, blotches). The sets are written once\n"
        "into --sets and reused by every later run.",
        epilog="examples:\n  crowdstream check cameras\n"
        "  crowdstream check cameras --model runs/camera/crowd-lite0-camera.onnx --json",
    )
    add_engine_options(cameras)
    cameras.add_argument("--data-root", type=Path, help=DATA_ROOT_HELP)
    cameras.add_argument(
        "--sets",
        type=Path,
        metavar="DIR",
        help="where the check sets are written once and read (default: ~/.cache/crowdstream/camera-checks)",
    )
    cameras.set_defaults(handler=_cameras)


def _negatives(args: argparse.Namespace) -> int:
    from crowdstream.training.metrics import flag_rates
    from crowdstream.training.people_free import (
        count_checks,
        people_free_set,
        portrait_set,
        summarise_people_free,
    )

    check_every(args.every)
    if args.save and not args.save.parent.is_dir():
        raise CrowdstreamError(f"--save: {args.save.parent} does not exist")
    if args.save and args.save.exists() and not args.save.is_dir():
        raise CrowdstreamError(f"--save: {args.save} is a file, not a folder")
    data_root = resolve_data_root(args.data_root, required=False)
    engine = open_engine(args)
    images = list(people_free_set(data_root, args.every))
    portraits = list(portrait_set())
    if args.save:
        _save(args.save, images + portraits)
    results = count_checks(engine, images + portraits, args.tiles, show_progress(args))
    free = [r for r in results if not r.people]
    report = {
        "model": str(engine.model_path),
        "tiles": args.tiles,
        "images": [r.as_dict() for r in results],
        "people_free": summarise_people_free(free),
        "portraits": [{"name": r.name, "people": r.people, "count": r.count} for r in results if r.people],
        "uncertainty": flag_rates(
            [r.count for r in results], [r.people for r in results], [r.self_check.uncertain for r in results]
        ),
        "left_out": left_out_sets(data_root),
    }
    print(json.dumps(report) if args.json else format_negatives(report))
    return 0


def _cameras(args: argparse.Namespace) -> int:
    import sys

    from crowdstream.training.camera_checks import (
        camera_checks,
        format_camera_checks,
        sets_current,
        write_check_sets,
    )

    folder = args.sets or Path.home() / ".cache" / "crowdstream" / "camera-checks"
    if not sets_current(folder):
        data_root = resolve_data_root(args.data_root)
        print(f"writing the camera check sets to {folder} (once, from {data_root})", file=sys.stderr)
        write_check_sets(folder, data_root)
    engine = open_engine(args)
    report = {
        "model": str(engine.model_path),
        **camera_checks(engine, folder, args.tiles, show_progress(args)),
    }
    print(json.dumps(report) if args.json else format_camera_checks(report))
    return 0


def left_out_sets(data_root: Path | None) -> list[str]:
    """The check sets that did not run here, each with why: a report over a subset must say so."""
    from importlib.util import find_spec

    left_out = []
    if data_root is None:
        left_out.append(
            f"holdout-crop: no data root (name it with --data-root DIR or {DATA_ROOT_ENV} to check the "
            "ShanghaiTech hold-out crops too)"
        )
    if find_spec("skimage") is None:
        left_out.append("package and portraits: scikit-image is not installed (pip install scikit-image)")
    return left_out


def _save(folder: Path, images: list) -> None:
    import cv2

    folder.mkdir(exist_ok=True)
    for item in images:
        cv2.imwrite(str(folder / (item.name.replace("/", "_").replace(":", "_") + ".png")), item.image)


def format_negatives(report: dict) -> str:
    lines = [f"{'source':>12}  {'image':44}  {'size':>9}  {'count':>7}  {'per 512²':>8}"]
    for r in report["images"]:
        if not r["people"]:
            size = f"{r['width']}x{r['height']}"
            lines.append(
                f"{r['source']:>12}  {r['name']:44}  {size:>9}  {r['count']:7.2f}  {r['per_512']:8.2f}"
            )
    summary = report["people_free"]
    for source, s in {**summary["by_source"], "all": summary["all"]}.items():
        if s["images"]:
            lines.append(
                f"{source:>12}: {s['images']} images, mean {s['mean_per_512']:.2f} per 512², "
                f"largest {s['max_per_512']:.2f}, {s['above_max']} above 3"
            )
    verdict = "met" if summary["all"]["target_met"] else "NOT met"
    ran = ", ".join(summary["by_source"])
    lines.append(f"target (mean < 1 per 512², none above 3) over {ran}: {verdict}")
    lines += [f"left out: {reason}" for reason in report["left_out"]]
    lines += [
        f"portrait {p['name']}: {p['count']:.2f} counted, {p['people']} person" for p in report["portraits"]
    ]
    flagged = [r["name"] for r in report["images"] if r["uncertain"]]
    lines.append(
        f"flagged uncertain: {len(flagged)} of {len(report['images'])}"
        + (f" ({', '.join(flagged)})" if flagged else "")
    )
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    from crowdstream.training.demo_clip import IMAGES, demo_scenes
    from crowdstream.training.evaluate import Evaluation, evaluate_scenes

    if args.per_shot < 1:
        raise CrowdstreamError(f"--per-shot must be at least 1, got {args.per_shot}")
    clip = args.clip or _bundled_clip()
    if not clip.is_file():
        raise CrowdstreamError(f"{clip}: no such clip")
    images = args.images or shanghaitech_part("B", resolve_data_root(args.data_root)) / "images"
    missing = [name for name in IMAGES if not (images / name).is_file()]
    if missing:
        raise CrowdstreamError(f"{images}: the clip's source images are missing ({', '.join(missing)})")
    engine = open_engine(args)
    keys = ("images", "truth_mean", "predicted_mean", "mae", "bias", "bias_pct")
    shots, every_frame = [], Evaluation()
    for number, scenes in enumerate(demo_scenes(clip, images, args.per_shot), start=1):
        evaluation = evaluate_scenes(engine, scenes, args.tiles, progress=False)
        every_frame.extend(evaluation)
        summary = evaluation.summary()
        shots.append({"shot": number, "image": IMAGES[number - 1], **{k: summary[k] for k in keys}})
    overall = every_frame.summary()
    report = {
        "clip": str(clip),
        "model": str(engine.model_path),
        "tiles": args.tiles,
        "shots": shots,
        "all": {k: overall[k] for k in (*keys, "mae_ci95")},
    }
    print(json.dumps(report) if args.json else format_demo(report))
    return 0


def _bundled_clip() -> Path:
    from crowdstream.stream.sources import (
        DEMO_CLIP,
    )  # where the service finds its demo; only the path is used

    return DEMO_CLIP


def format_demo(report: dict) -> str:
    lines = [
        f"{'shot':>4}  {'image':12}  {'frames':>6}  {'annotated':>9}  {'counted':>8}  {'MAE':>7}  {'bias %':>8}"
    ]
    for s in [*report["shots"], {"shot": "all", "image": "", **report["all"]}]:
        lines.append(
            f"{s['shot']:>4}  {s['image']:12}  {s['images']:6d}  {s['truth_mean']:9.1f}  "
            f"{s['predicted_mean']:8.1f}  {s['mae']:7.2f}  {s['bias_pct']:+7.1f} %"
        )
    low, high = report["all"]["mae_ci95"]
    lines.append(f"MAE over all frames {report['all']['mae']:.2f} (95 % CI {low:.2f}-{high:.2f})")
    return "\n".join(lines)
