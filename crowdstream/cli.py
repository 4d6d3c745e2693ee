"""`crowdstream`: one command with subcommands. Each package contributes its subcommands from a light
`cli` module (argparse definitions only); heavy imports (torch, onnxruntime, aiortc) happen inside the
handlers, so `crowdstream --help` is instant and the service never loads torch."""

from __future__ import annotations

import argparse
import sys

from crowdstream import __version__
from crowdstream.logs import configure_logging
from engines.errors import CrowdstreamError

DESCRIPTION = """Real-time crowd counting for video streams.

Turn point annotations into density maps, train and evaluate the density model, build and benchmark
inference engines, and serve cameras with live heatmaps, counts in Redis and metrics for Prometheus."""

EPILOG = """examples:
  crowdstream serve                                  # demo clip, shipped model, http://127.0.0.1:8080
  crowdstream count crowd.jpg -o overlay.png         # one-off count with a heatmap overlay
  crowdstream eval ../shared/data/shanghaitech/part_B/train_data --limit 20 --json
  crowdstream COMMAND --help                         # details and an example for each command"""


def build_parser() -> argparse.ArgumentParser:
    from engines import cli as engines_cli
    from stream import cli as stream_cli
    from training import cli as training_cli

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
    for module in (training_cli, engines_cli, stream_cli):
        module.register(commands, bench_commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    configure_logging(args.log_level, args.log_json)
    try:
        return int(args.handler(args) or 0)
    except CrowdstreamError as exc:
        print(f"crowdstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("crowdstream: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
