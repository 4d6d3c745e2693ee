"""Subcommands of `training`: `train`, `density`, `export`, `bench models` (and `eval`, `check`, `finetune`
from crowdstream.training.eval_cli, training.check_cli and training.finetune_cli).

Only argparse definitions live at module level; torch and the data code load inside the handlers."""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

from crowdstream.commands import Subcommands
from crowdstream.engines.data_root import DATA_ROOT_HELP, resolve_data_root
from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.frames import HOLDOUT_EVERY

RAW = argparse.RawDescriptionHelpFormatter
RECIPES = resources.files("crowdstream.training") / "configs"
"""The shipped recipes: the YAML files behind the model card's figures (package data)."""


def register(commands: Subcommands, bench: Subcommands) -> None:
    from crowdstream.training import check_cli, eval_cli, finetune_cli

    _add_train(commands)
    finetune_cli.register(commands)
    eval_cli.register(commands)
    check_cli.register(commands)
    _add_density(commands)
    _add_export(commands)
    models = bench.add_parser(
        "models",
        formatter_class=RAW,
        help="parameters, GFLOPs and CPU speed of each model",
        description="Compare the production model with the seed report's two networks.",
        epilog="example:\n  crowdstream bench models --json",
    )
    models.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    models.add_argument("--repeats", type=int, default=10, help="timed forward passes per model (default 10)")
    models.set_defaults(handler=_bench_models)
    steps = bench.add_parser(
        "train",
        formatter_class=RAW,
        help="training tiles/s for fp32 / bf16 autocast, with and without channels-last",
        description="Time the real training step (model, point loss, AdamW) on synthetic batches for each\n"
        "precision and memory format, interleaved so a busy machine slows each alike; median of rounds.",
        epilog="example:\n  crowdstream bench train --batch 16 --rounds 5",
    )
    steps.add_argument("--batch", type=int, default=16, help="tiles per step (default 16)")
    steps.add_argument("--rounds", type=int, default=5, help="timed steps per variant (default 5)")
    steps.add_argument("--frozen-blocks", type=int, default=3, help="backbone blocks kept frozen (default 3)")
    steps.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    steps.add_argument("--json", action="store_true", help="print one JSON list")
    steps.set_defaults(handler=_bench_train)
    density = bench.add_parser(
        "density",
        formatter_class=RAW,
        help="speed of ground-truth density maps",
        description="Time each density method on random heads in a frame (median of runs).",
        epilog="example:\n  crowdstream bench density --heads 3000 --size 1024x768 --json",
    )
    density.add_argument("--heads", type=int, default=3000, help="number of heads (default 3000)")
    density.add_argument("--size", default="1024x768", help="frame WIDTHxHEIGHT (default 1024x768)")
    density.add_argument("--repeats", type=int, default=5)
    density.add_argument("--json", action="store_true", help="print one JSON list")
    density.set_defaults(handler=_bench_density)


def recipes() -> list[str]:
    """The training recipes shipped in the package (crowdstream/training/configs), by name."""
    return sorted(p.name.removesuffix(".yaml") for p in RECIPES.iterdir() if p.name.endswith(".yaml"))


def recipe_or_file(value: str) -> Path:
    """`-c`: a shipped recipe by name (crowd-lite0), else a file path as given."""
    recipe = RECIPES / f"{value}.yaml"
    if not Path(value).exists() and recipe.is_file():
        return Path(str(recipe))
    return Path(value)


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise CrowdstreamError(
            "this command needs PyTorch: pip install 'crowdstream[train]' (torch from PyPI is the CUDA build; "
            "for the CPU build install it first: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
        ) from exc


def _add_train(commands: Subcommands) -> None:
    p = commands.add_parser(
        "train",
        formatter_class=RAW,
        help="train the density model (and fit the count head, export ONNX)",
        description="Train CrowdLite0 on ShanghaiTech parts A and B together (balanced), validate every epoch on\n"
        f"a fixed hold-out (every {HOLDOUT_EVERY}th image) with the stream's own tiling, keep the best checkpoint, fit the\n"
        "count head, and export <out>/crowd-lite0.onnx. Safe to interrupt: rerun with --resume.",
        epilog="examples:\n  crowdstream train -c crowd-lite0 --data-root /srv/data   # the CPU recipe, shipped\n"
        "  crowdstream train --epochs 1 --limit 8 --out runs/smoke\n"
        "  crowdstream train -c crowd-lite0-gpu --device cuda   # minutes on a GPU\n"
        "  crowdstream train -c crowd-lite0 --resume",
    )
    p.add_argument(
        "-c",
        "--config",
        type=recipe_or_file,
        metavar="RECIPE|FILE",
        help=f"a YAML file of TrainConfig settings, or a shipped recipe: {', '.join(recipes())} "
        "(flags override it)",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--limit", type=int, help="at most this many images per part (quick runs)")
    p.add_argument(
        "--time-budget",
        type=float,
        dest="time_budget_minutes",
        metavar="MINUTES",
        help="fit the learning-rate schedule into this much training time",
    )
    p.add_argument("--samples-per-part", type=int, help="random tiles per part per epoch")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--tiles", help="auto or RxC")
    p.add_argument("--threads", type=int, help="torch threads (0 = all cores)")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], help="where to train (default auto: CUDA if any)"
    )
    p.add_argument(
        "--workers",
        type=int,
        help="tile-planning threads (default: 0 on the CPU, 2 on CUDA; cores-2 for the density loss)",
    )
    p.add_argument(
        "--data",
        action="append",
        metavar="PART=FOLDER",
        help="a part's ShanghaiTech- or NWPU-layout folder (repeat per part; replaces the config's data_roots)",
    )
    p.add_argument(
        "--data-root", type=Path, help=DATA_ROOT_HELP + "; --data or the config's data_roots name parts"
    )
    p.add_argument("--out", type=Path, help="run folder for checkpoints, log.csv, curves.png, the ONNX file")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    finish = p.add_mutually_exclusive_group()
    finish.add_argument(
        "--no-finalize",
        action="store_true",
        help="stop after training: no count-head fit and no ONNX export (run --finalize-only later)",
    )
    finish.add_argument(
        "--finalize-only",
        action="store_true",
        help="no training: fit the count head on <out>/<select>.pt and export <out>/crowd-lite0.onnx",
    )
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    _require_torch()
    from crowdstream.training.config import load_train_config
    from crowdstream.training.finalize import finalize_run
    from crowdstream.training.trainer import Trainer

    overrides = {
        "epochs": args.epochs,
        "time_budget_minutes": args.time_budget_minutes,
        "limit": args.limit,
        "samples_per_part": args.samples_per_part,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "tiles": args.tiles,
        "threads": args.threads,
        "seed": args.seed,
        "device": args.device,
        "workers": args.workers,
        "data_roots": _data_roots(args.data) or _parts_under(args.data_root),
        "out": args.out,
    }
    config = load_train_config(args.config, overrides)
    if not args.finalize_only:
        trainer = Trainer(config)
        if args.resume:
            trainer.resume()
        trainer.fit()
    if not args.no_finalize:
        print(json.dumps(finalize_run(config), indent=2))
    return 0


def _data_roots(items: list[str] | None) -> dict[str, str] | None:
    """`--data A=path --data B=path` → {"A": "path", "B": "path"}; None when not given."""
    if not items:
        return None
    roots = {}
    for item in items:
        part, sep, folder = item.partition("=")
        if not sep or not part or not folder:
            raise CrowdstreamError(f"--data: expected PART=FOLDER such as A=data/part_A, got {item!r}")
        roots[part] = folder
    return roots


def _parts_under(data_root: Path | None) -> dict[str, Path] | None:
    """ShanghaiTech parts A and B under `--data-root`; None when it is not given."""
    if data_root is None:
        return None
    from crowdstream.training.config import shanghaitech_parts

    return shanghaitech_parts(resolve_data_root(data_root))


def _add_density(commands: Subcommands) -> None:
    p = commands.add_parser(
        "density",
        formatter_class=RAW,
        help="draw an image's ground-truth density map and count",
        description="Turn head points into a density map (geometry-adaptive Gaussians by default) and write the\n"
        "image with the heatmap and the count drawn on it. Annotation: ShanghaiTech .mat, NWPU-style .json,\n"
        "a JSON list of [x, y] or a CSV of x,y.",
        epilog="example:\n  crowdstream density $CROWDSTREAM_DATA/shanghaitech/part_B/train_data/images/IMG_1.jpg \\\n"
        "      $CROWDSTREAM_DATA/shanghaitech/part_B/train_data/ground-truth/GT_IMG_1.mat -o density.png",
    )
    p.add_argument("image", type=Path)
    p.add_argument("annotation", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="PNG/JPEG file to write")
    p.add_argument("--method", default="adaptive", choices=["adaptive", "gaussian", "disc"])
    p.add_argument(
        "--sigma", type=float, default=4.0, help="fixed sigma (gaussian) / lone-head sigma (adaptive)"
    )
    p.set_defaults(handler=_density)


def _density(args: argparse.Namespace) -> int:
    import cv2

    from crowdstream.engines.labels import Rect, draw_label, label_box, label_scale
    from crowdstream.engines.preprocess import resize_density
    from crowdstream.engines.visualize import blend_heatmap
    from crowdstream.training.annotations import load_points_file
    from crowdstream.training.density import DensityConfig, density_map

    sample = load_points_file(args.annotation, args.image)
    config = DensityConfig(method=args.method, sigma=args.sigma)
    density = density_map(sample.points, sample.height, sample.width, config)
    # drawn at the live view's resolution (a quarter of the frame), so both use the same colour scale
    quarter = resize_density(density, max(1, sample.height // 4), max(1, sample.width // 4))
    picture = blend_heatmap(sample.load_image(), quarter)
    text, size = f"{sample.count} people ({args.method})", label_scale(picture)
    draw_label(picture, text, Rect(12, 12, *label_box(text, size)), size, (20, 20, 20))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.output), picture):
        raise CrowdstreamError(f"{args.output}: cannot write an image there (use .png or .jpg)")
    print(f"{args.output}: {sample.count} people, density integral {density.sum():.3f}")
    return 0


def _add_export(commands: Subcommands) -> None:
    p = commands.add_parser(
        "export",
        formatter_class=RAW,
        help="export a checkpoint (ONNX or TorchScript) or a shipped ONNX model (TorchScript)",
        description="Write a training checkpoint as ONNX (dynamic batch axis, outputs density and count) or\n"
        "TorchScript, or turn an ONNX model (a file or a shipped name such as 'default') into TorchScript for the\n"
        "PyTorch backend. Every export is checked against ONNX Runtime before it is written. The PyTorch backend\n"
        "also runs ONNX files directly; TorchScript only saves the conversion at load time.",
        epilog="examples:\n  crowdstream export runs/crowd-lite0/best.pt -o crowdstream/engines/models/crowd-lite0.onnx\n"
        "  crowdstream export runs/crowd-lite0/best.pt --format torchscript -o crowd-lite0.ts\n"
        "  crowdstream export default --format torchscript -o crowd-lite0.ts",
    )
    p.add_argument(
        "source", metavar="CHECKPOINT|MODEL", help="a .pt checkpoint, an .onnx file or a shipped model name"
    )
    p.add_argument(
        "--format", choices=["onnx", "torchscript"], default="onnx", help="what to write (default onnx)"
    )
    p.add_argument(
        "-o", "--output", type=Path, help="file to write (default: <source name>.onnx or .ts here)"
    )
    p.add_argument(
        "--count-head",
        choices=["auto", "on", "off"],
        default="auto",
        help="checkpoints only; auto: as decided by calibration on validation (default)",
    )
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    _require_torch()
    from crowdstream.engines.engine_cache import file_sha256
    from crowdstream.engines.models import NAMED_MODELS, resolve_model

    suffix = ".onnx" if args.format == "onnx" else ".ts"
    if args.source in NAMED_MODELS or args.source.lower().endswith(".onnx"):
        source = resolve_model(args.source)
        if args.format == "onnx":
            raise CrowdstreamError(f"{source}: already an ONNX model (use --format torchscript)")
        from crowdstream.engines.onnx_torch import export_torchscript

        out = export_torchscript(source, args.output or Path(source.stem + suffix))
        print(
            json.dumps({"model": str(source), "torchscript": str(out), "sha256": file_sha256(out)}, indent=2)
        )
        return 0
    checkpoint = Path(args.source)
    if not checkpoint.is_file():
        raise CrowdstreamError(
            f"{checkpoint}: checkpoint not found (or give an .onnx file or a shipped model name)"
        )
    from crowdstream.training.export import export_checkpoint

    choice = {"auto": None, "on": True, "off": False}[args.count_head]
    out = args.output or Path(checkpoint.stem + suffix)
    print(json.dumps(export_checkpoint(checkpoint, out, choice, args.format), indent=2))
    return 0


def _bench_models(args: argparse.Namespace) -> int:
    _require_torch()
    from crowdstream.engines.table import format_table
    from crowdstream.training.model_bench import MODEL_COLUMNS, bench_models

    rows = bench_models(repeats=args.repeats)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, MODEL_COLUMNS))
    return 0


def _bench_train(args: argparse.Namespace) -> int:
    _require_torch()
    from crowdstream.engines.table import format_table
    from crowdstream.training.step_bench import STEP_COLUMNS, bench_train_steps
    from crowdstream.training.trainer import resolve_device

    if args.batch < 1 or args.rounds < 1:
        raise CrowdstreamError("--batch and --rounds must be at least 1")
    resolve_device(args.device)
    rows = bench_train_steps(args.batch, args.rounds, args.frozen_blocks, args.device)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, STEP_COLUMNS))
    return 0


def _bench_density(args: argparse.Namespace) -> int:
    import statistics
    import time

    import numpy as np

    from crowdstream.training.density import METHODS, DensityConfig, density_map

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError as exc:
        raise CrowdstreamError(f"--size: expected WIDTHxHEIGHT such as 1024x768, got {args.size!r}") from exc
    points = np.random.default_rng(0).uniform([0, 0], [width, height], (args.heads, 2))
    rows = []
    for method in METHODS:
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            total = density_map(points, height, width, DensityConfig(method=method)).sum()
            times.append(time.perf_counter() - started)
        rows.append(
            {
                "method": method,
                "heads": args.heads,
                "width": width,
                "height": height,
                "seconds_p50": round(statistics.median(times), 4),
                "integral": round(float(total), 3),
            }
        )
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(
                f"{row['method']:9} {row['heads']} heads on {width}x{height}: {row['seconds_p50'] * 1000:.1f} ms "
                f"(integral {row['integral']})"
            )
    return 0
