"""`crowdstream finetune`: teach the model a camera from its annotated snapshots.

Made to run beside a live service: it lowers its own priority (`--nice`), bounds torch's and ONNX Runtime's
threads (`--threads`) and its address space (`--max-memory-gb`). With `--progress jsonl` stdout carries only
JSON lines (`start`, `progress`, `done` or `error`) for the page's background job; otherwise progress goes to
stderr for a person. Only argparse definitions live at module level."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from crowdstream.commands import Subcommands
from crowdstream.engines.data_root import DATA_ROOT_HELP, resolve_data_root
from crowdstream.engines.errors import CrowdstreamError

RAW = argparse.RawDescriptionHelpFormatter


def register(commands: Subcommands) -> None:
    p = commands.add_parser(
        "finetune",
        formatter_class=RAW,
        help="fine-tune the model on one camera's annotated snapshots (CPU, minutes)",
        description='Fine-tune a model on a camera\'s snapshots (<name>.jpg + <name>.json with "points" and optional\n'
        '"empty_regions" boxes marked "nobody here", as the page saves them). Trains the decoder and the last\n'
        "backbone blocks on augmented snapshot tiles mixed with replayed training tiles (ShanghaiTech's under\n"
        "--data-root, else the crops the package ships), refits the count head's gain, holds out some\n"
        "snapshots, and writes OUT.onnx (the base graph with new weights) and OUT.report.json: held-out snapshot\n"
        "MAE and standard hold-out MAE (every 5th ShanghaiTech image) before and after, and `better`.",
        epilog="examples:\n"
        "  crowdstream finetune snapshots/gate --from default -o models/gate.onnx --minutes 5\n"
        "  crowdstream finetune snapshots/gate -o /tmp/quick.onnx --minutes 0.2 --standard-limit 4 --progress jsonl",
    )
    p.add_argument("dataset", type=Path, help="folder of annotated snapshots")
    p.add_argument(
        "--from", dest="base", default="default", help="base model: default, a shipped name or an .onnx file"
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="fine-tuned ONNX model to write")
    p.add_argument("--minutes", type=float, default=5.0, help="training time budget (default 5)")
    p.add_argument(
        "--steps", type=int, help="train this many steps (the minutes still cap the time): a repeatable run"
    )
    p.add_argument(
        "--checkpoint-every",
        type=float,
        metavar="MINUTES",
        help="save OUT.checkpoint.pt this often; the same command run again resumes from it exactly",
    )
    p.add_argument(
        "--holdout", type=int, help="snapshots held out to judge it (default: a fifth, at least 1)"
    )
    p.add_argument(
        "--standard-limit", type=int, metavar="N", help="score at most N standard hold-out images per part"
    )
    p.add_argument(
        "--progress", choices=["human", "jsonl"], default="human", help="jsonl: JSON lines on stdout"
    )
    p.add_argument(
        "--int8", action="store_true", help="also write OUT-int8.onnx (static INT8, like the shipped one)"
    )
    p.add_argument(
        "--last-blocks", type=int, default=3, help="backbone blocks trained with the decoder (default 3)"
    )
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default 3e-4)")
    p.add_argument(
        "--replay-share", type=float, default=0.5, help="share of replayed training tiles (default 0.5)"
    )
    p.add_argument(
        "--replay-weight",
        type=float,
        default=0.15,
        help="weight of replayed tiles' distance from the base model (default 0.15)",
    )
    p.add_argument(
        "--replay-images",
        type=int,
        default=40,
        help="training images (or shipped crops) per part to replay (default 40)",
    )
    p.add_argument(
        "--replay-negatives",
        choices=["anchor", "zero", "none"],
        default="anchor",
        help="replayed people-free tiles: anchored to the base model (default), trained to zero, or not drawn",
    )
    p.add_argument(
        "--no-count-gain",
        dest="count_gain",
        action="store_false",
        help="keep the count head as trained (default: rescale it to the training snapshots' heads)",
    )
    p.add_argument("--data-root", help=DATA_ROOT_HELP + "; without one, the shipped replay set guards it")
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default 2)")
    p.add_argument("--nice", type=int, default=10, help="added to this process's niceness (default 10)")
    p.add_argument(
        "--max-memory-gb", type=float, default=8.0, help="address-space limit of this process (default 8)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_finetune)


def _finetune(args: argparse.Namespace) -> int:
    emit = _jsonl if args.progress == "jsonl" else _human()
    try:
        report = _run(args, emit)
    except CrowdstreamError as exc:
        if args.progress != "jsonl":
            raise
        _jsonl({"event": "error", "message": str(exc).splitlines()[0]})
        return 2
    except MemoryError:
        message = f"out of memory under --max-memory-gb {args.max_memory_gb}: raise it or lower --threads"
        if args.progress != "jsonl":
            raise CrowdstreamError(message) from None
        _jsonl({"event": "error", "message": message})
        return 2
    done = {
        "event": "done",
        "model": report["model"],
        "report": str(Path(report["model"]).with_suffix(".report.json")),
    }
    if args.progress == "jsonl":
        _jsonl({**done, "better": report["better"]})
    else:
        print(summary(report, done["report"]))
    return 0


def summary(report: dict, report_path: str) -> str:
    """What a person reads at the end of a run: the files, the camera's and the standard hold-out's MAE
    before and after, and the verdict with its rule (the whole report is in the JSON file)."""
    written = [report["model"], *([report["int8_model"]] if "int8_model" in report else [])]
    people = ", ".join(f"{truth:.0f}" for truth in report["holdout_truth"])
    parts = ", ".join(
        f"part {part} {before:.1f} -> {report['standard_mae_after'][part]:.1f}"
        for part, before in report["standard_mae_before"].items()
    )
    return "\n".join(
        [
            f"wrote {' and '.join(written)} (report: {report_path})",
            f"this camera's held-out snapshots ({', '.join(report['holdout'])}; {people} people): "
            f"MAE {report['holdout_mae_before']:.2f} -> {report['holdout_mae_after']:.2f}",
            f"standard hold-out ({report['standard_images']} images, {report['standard_set']}): {parts}",
            f"better: {'yes' if report['better'] else 'no'} ({report['better_rule']})",
        ]
    )


def _run(args: argparse.Namespace, emit) -> dict:
    from pydantic import ValidationError

    bound_resources(args.nice, args.max_memory_gb)
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise CrowdstreamError("finetune needs PyTorch: pip install 'crowdstream[train]'") from exc
    from crowdstream.training.finetune import FinetuneRunConfig, run_finetune

    settings = {
        "dataset": args.dataset,
        "base": args.base,
        "out": args.out,
        "minutes": args.minutes,
        "steps": args.steps,
        "checkpoint_minutes": args.checkpoint_every,
        "holdout": args.holdout,
        "standard_limit": args.standard_limit,
        "last_blocks": args.last_blocks,
        "lr": args.lr,
        "replay_share": args.replay_share,
        "replay_images": args.replay_images,
        "replay_weight": args.replay_weight,
        "replay_negatives": args.replay_negatives,
        "threads": args.threads,
        "seed": args.seed,
        "int8": args.int8,
        "count_gain": args.count_gain,
        "data_root": resolve_data_root(args.data_root, required=False),
    }
    try:
        config = FinetuneRunConfig(**settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CrowdstreamError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from exc
    if config.out.suffix.lower() != ".onnx":
        raise CrowdstreamError(f"-o {config.out}: the fine-tuned model is an .onnx file")
    return run_finetune(config, emit)


def bound_resources(nice: int, max_memory_gb: float) -> None:
    """Lower this process's priority and cap its address space (Linux; a no-op where unsupported)."""
    import resource

    if nice:
        os.nice(nice)
    if max_memory_gb > 0:
        limit = int(max_memory_gb * 2**30)
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(
            resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard)
        )


def _jsonl(event: dict) -> None:
    print(json.dumps(event), flush=True)


def _human():
    """Progress as one updating line on stderr."""

    def show(event: dict) -> None:
        if event["event"] == "start":
            print(
                f"fine-tuning {event['base_model']} on {len(event['train'])} snapshot(s), "
                f"holding out {', '.join(event['holdout'])}",
                file=sys.stderr,
            )
        elif event["event"] == "progress":
            loss = f" loss {event['loss']:.3f}" if "loss" in event else ""
            print(
                f"\r{event['stage']:>10} {event['fraction'] * 100:5.1f} %{loss}  about {event['eta_s']:.0f} s left ",
                end="",
                file=sys.stderr,
                flush=True,
            )

    return show
