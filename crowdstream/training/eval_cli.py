"""`crowdstream eval`: score a model on an annotated folder, its hold-out, and zoomed crops of it.

Only argparse definitions live at module level; the engines and data code load inside the handler."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from crowdstream.commands import Subcommands
from crowdstream.engines.data_root import DATA_ROOT_HELP, resolve_data_root
from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.frames import HOLDOUT_EVERY, shanghaitech_part
from crowdstream.engines.spec import DEFAULT_TILES

RAW = argparse.RawDescriptionHelpFormatter


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """The options every scoring command shares: which model, runtime, tiling and threads."""
    parser.add_argument(
        "--model", default="default", help="ONNX/engine file or shipped name (default: the shipped model)"
    )
    parser.add_argument("--backend", default="auto", help="auto, onnxruntime, tensorrt or torch")
    parser.add_argument(
        "--tiles", default=DEFAULT_TILES, help=f"adaptive, auto or RxC, e.g. 2x2 (default {DEFAULT_TILES})"
    )
    parser.add_argument("--threads", type=int, default=0, help="inference threads (0 = all cores)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def open_engine(args: argparse.Namespace):
    """Check the tiling, then load the engine (a bad model path is a one-line error from load_engine)."""
    from crowdstream.engines.engine import load_engine
    from crowdstream.engines.preprocess import parse_tiles

    try:
        parse_tiles(args.tiles)
    except ValueError as exc:
        raise CrowdstreamError(f"--tiles: {exc}") from exc
    return load_engine(args.model, args.backend, threads=args.threads)


def show_progress(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() or not args.json


def check_every(every: int) -> int:
    if every < 2:
        raise CrowdstreamError(f"--every must be at least 2 (every N-th image is held out), got {every}")
    return every


def register(commands: Subcommands) -> None:
    p = commands.add_parser(
        "eval",
        formatter_class=RAW,
        help="score a model on an annotated data set (MAE, NAE, bias by crowd size, zoomed crops)",
        description="Count every image of a ShanghaiTech-layout (images/ + ground-truth/) or NWPU-layout folder with\n"
        "the stream's tiling and report MAE with a bootstrap 95 % interval, RMSE (the field's 'MSE'), NAE\n"
        "(all images and those with at most 50 people), GAME(0-3), bias, and per crowd size (0-50, 51-200,\n"
        "201-500, 501+) the images, MAE, bias and bias % (total error over total people).\n\n"
        "--zoom Z cuts from every image a window of 1/Z of its size (at the centre, and centred on an\n"
        "annotated head), resizes it up by Z and scores it against the heads inside the window.",
        epilog="examples:\n  crowdstream eval B --limit 20 --json   # ShanghaiTech part B under the data root\n"
        "  crowdstream eval A --holdout --data-root /srv/data   # the validation images\n"
        "  crowdstream eval B --holdout --every 5 --zoom 1.5 2 3\n"
        "  crowdstream eval my-camera/ --model new.onnx --baseline default   # any annotated folder\n"
        "  crowdstream eval my-camera/ --pictures worst/ --worst 5   # see where it counts wrong",
    )
    p.add_argument(
        "dataset",
        metavar="DATASET",
        help="an annotated folder, or A / B: that ShanghaiTech part under the data root",
    )
    p.add_argument("--data-root", type=Path, help=DATA_ROOT_HELP)
    add_engine_options(p)
    p.add_argument("--limit", type=int, help="only the first N images (of the hold-out with --holdout)")
    p.add_argument(
        "--holdout",
        action="store_true",
        help=f"only the held-out images (every {HOLDOUT_EVERY}th by default)",
    )
    p.add_argument(
        "--every",
        type=int,
        metavar="N",
        help=f"hold out every N-th image (natural order) instead of every {HOLDOUT_EVERY}th; implies --holdout",
    )
    p.add_argument(
        "--zoom",
        type=float,
        nargs="+",
        metavar="Z",
        help="also score the images zoomed Z times: above 1 crops blown up (heads larger), below 1 the "
        "whole image shrunk (heads smaller, as a camera further away), e.g. 0.35 0.5 1.5 2 3",
    )
    p.add_argument(
        "--baseline",
        metavar="MODEL",
        help="also score this model on the same images and report the MAE difference with a paired 95 %% interval",
    )
    p.add_argument(
        "--pictures",
        type=Path,
        metavar="DIR",
        help="write the images counted worst into DIR as pictures: the model's heatmap, the annotated heads as "
        "rings, counted against truth (how many: --worst)",
    )
    p.add_argument(
        "--worst", type=int, default=8, metavar="N", help="how many pictures --pictures writes (default 8)"
    )
    p.set_defaults(handler=_eval)


def dataset_folder(name: str, data_root: Path | None) -> Path:
    """The folder `eval` scores: as given, or for A / B that ShanghaiTech part under the data root."""
    if name in ("A", "B") and not Path(name).is_dir():
        return shanghaitech_part(name, resolve_data_root(data_root))
    return Path(name)


def _eval(args: argparse.Namespace) -> int:
    from crowdstream.engines.engine import load_engine
    from crowdstream.training.error_pictures import picture_folder, write_error_pictures
    from crowdstream.training.evaluate import (
        Scene,
        dataset_samples,
        evaluate,
        evaluate_variants,
        unchanged,
        versus,
    )
    from crowdstream.training.zoom import check_zoom, zoom_rows, zoom_variants

    every = check_every(args.every) if args.every is not None else (HOLDOUT_EVERY if args.holdout else None)
    try:
        zooms = [check_zoom(z) for z in args.zoom or []]
    except ValueError as exc:
        raise CrowdstreamError(f"--zoom: {exc}") from exc
    if args.limit is not None and args.limit < 1:
        raise CrowdstreamError(f"--limit must be at least 1, got {args.limit}")
    if args.worst < 1:
        raise CrowdstreamError(f"--worst must be at least 1, got {args.worst}")
    dataset = dataset_folder(args.dataset, args.data_root)
    if not dataset.is_dir():
        raise CrowdstreamError(f"{dataset}: no such data set folder")
    if args.pictures is not None:
        picture_folder(args.pictures)
    engine = open_engine(args)
    baseline = load_engine(args.baseline, args.backend, threads=args.threads) if args.baseline else None
    samples = dataset_samples(dataset, args.limit, every)
    if not samples:
        raise CrowdstreamError(f"{dataset}: no annotated images to score (fewer than --every {every}?)")
    scenes = (Scene.from_sample(sample) for sample in samples)
    variants = {"whole": unchanged, **zoom_variants(zooms)}
    results = evaluate_variants(
        engine, scenes, variants, args.tiles, show_progress(args), len(samples), judged=("whole",)
    )
    whole = results.pop("whole")
    summary = {
        "dataset": str(dataset),
        "model": str(engine.model_path),
        "backend": engine.backend,
        "tiles": args.tiles,
        "holdout_every": every,
        **whole.summary(),
    }
    if zooms:
        summary["zoom"] = zoom_rows(results, summary["mae"])
    if baseline is not None:
        scored = evaluate(baseline, samples, tiles=args.tiles, progress=show_progress(args))
        summary["baseline"] = versus(whole, scored, str(baseline.model_path))
    if args.pictures is not None:
        flags = [check.uncertain for check in whole.uncertainty]
        written = write_error_pictures(
            engine, samples, whole.predicted, flags, args.tiles, args.pictures, args.worst
        )
        summary["pictures"] = [str(path) for path in written]
    if args.json:
        summary["per_image"] = whole.per_image()
    print(json.dumps(summary) if args.json else format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    """The human-readable report: the same figures as --json."""
    split = f", hold-out every {summary['holdout_every']}th" if summary["holdout_every"] else ""
    low, high = summary["mae_ci95"]
    sparse = summary["buckets"].get("0-50", {}).get("images", 0)
    lines = [
        f"{summary['images']} images of {summary['dataset']} ({summary['backend']}, tiles {summary['tiles']}{split})",
        f"  MAE {summary['mae']:.2f} (95 % CI {low:.2f}-{high:.2f})   RMSE {summary['rmse']:.2f}   "
        f"bias {summary['bias']:+.2f} ({_pct(summary['bias_pct'])})",
        f"  NAE {summary['nae']:.3f}   NAE on images with at most 50 people {_num(summary['nae_0_50'], '.3f')}"
        f" ({sparse} images)",
        "  GAME " + "  ".join(f"L{k}={v:.2f}" for k, v in summary["game"].items()),
        f"  {'people':>8}  {'images':>6}  {'MAE':>8}  {'bias':>8}  {'bias %':>8}",
    ]
    for bucket, v in summary["buckets"].items():
        lines.append(
            f"  {bucket:>8}  {v['images']:6d}  {v['mae']:8.2f}  {v['bias']:+8.2f}  {_pct(v['bias_pct']):>8}"
        )
    if "zoom" in summary:
        lines.append(
            f"  {'zoom':>5}  {'crop':>6}  {'truth':>7}  {'MAE':>7}  {'NAE':>6}  {'bias':>8}  {'bias %':>8}  MAE/whole"
        )
        for row in summary["zoom"]:
            lines.append(
                f"  {row['zoom']:>4g}x  {row['crop']:>6}  {row['truth_mean']:7.1f}  {row['mae']:7.2f}  "
                f"{_num(row['nae'], '6.3f')}  {row['bias']:+8.2f}  {_pct(row['bias_pct']):>8}  {row['mae_ratio']:.2f}"
            )
    if "baseline" in summary:
        base = summary["baseline"]
        low, high = base["mae_delta_ci95"]
        lines.append(
            f"  against {base['model']}: MAE {base['mae']:.2f} -> {summary['mae']:.2f}, change {base['mae_delta']:+.2f}"
            f" (paired 95 % CI {low:+.2f} to {high:+.2f}); {base['images_better']} images better,"
            f" {base['images_worse']} worse"
        )
    if "uncertainty" in summary:
        u = summary["uncertainty"]
        lines.append(
            f"  flagged uncertain: {u['flagged']} images; {_share(u['large_flagged'])} of the {u['large_errors']} "
            f"large errors, {_share(u['small_flagged'])} of the {u['small_errors']} small ones"
        )
    lines.append(
        f"  {summary['seconds_per_image'] * 1000:.1f} ms and {summary['inputs_per_image']:.2f} model inputs per image"
    )
    if "pictures" in summary:
        lines.append(f"  the {len(summary['pictures'])} images counted worst, as pictures:")
        lines += [f"    {path}" for path in summary["pictures"]]
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.1f} %"


def _num(value: float, spec: str) -> str:
    return "n/a" if math.isnan(value) else format(value, spec)
