"""Subcommands of `stream`: `serve`, `count`, `zones`, `bench stream`, `bench soak`.

Only argparse definitions live here; each handler imports what it needs when it runs, so the rest of
the CLI starts instantly and never loads the service's dependencies.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from crowdstream.commands import Subcommands
from crowdstream.engines.spec import DEFAULT_TILES

EXAMPLE_CONFIG = resources.files("crowdstream.stream") / "examples" / "cameras.yaml"
"""The commented example configuration `crowdstream config example` prints (shipped in the package)."""

SERVE_EPILOG = """examples:
  crowdstream serve                                   # the demo clip on http://127.0.0.1:8080
  crowdstream config example > cameras.yaml && crowdstream serve -c cameras.yaml   # from a file
  crowdstream serve --source rtsp://user:pass@10.0.0.7/stream1 --name "Main gate"   # your camera
  crowdstream serve --source rtsp://cam1/stream --source video.mp4 --redis-url redis://localhost:6379/0
  crowdstream serve --redis-data ~/.crowdstream/redis    # the embedded Redis (port 6380) keeps its data
  CROWDSTREAM_HTTP__PORT=9000 crowdstream serve -c cameras.yaml   # any key from the environment"""

COUNT_EPILOG = """examples:
  crowdstream count demo                              # the bundled demo clip, two frames a second
  crowdstream count crowd.jpg -o overlay.png          # prints the count, writes the heatmap overlay
  crowdstream count clip.mp4 --fps 1 -o overlay.mp4 --json"""

ZONES_EPILOG = """examples:
  crowdstream zones demo                              # from the service on http://127.0.0.1:8080
  crowdstream zones gate --url http://10.0.0.5:8080 --token $TOKEN
  crowdstream zones gate -c cameras.yaml              # from a config file"""

CONFIG_EPILOG = """examples:
  crowdstream config example > cameras.yaml           # then edit the cameras and start
  crowdstream serve -c cameras.yaml
  crowdstream config reference                        # every key: type, default, description (Markdown)"""

BENCH_STREAM_EPILOG = """examples:
  crowdstream bench stream --cameras 8 --seconds 60 --json
  crowdstream bench stream --cameras 16 --set decode.priority=0 --set engine.threads=1   # other settings"""

BENCH_SOAK_EPILOG = """examples:
  crowdstream bench soak                              # 16 cameras, 30 minutes, 2 RTSP and 2 Redis restarts
  crowdstream bench soak --cameras 4 --minutes 3 --rtsp-restarts 1 --redis-restarts 1 --json

Exit status 1 when a record was lost, repeated, reordered or unreadable, or an exception surfaced.
Needs redis-server and the GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0)."""


SERVE_FLAGS = {
    "http.host": ("host", "--host"),
    "http.port": ("port", "--port"),
    "redis.url": ("redis_url", "--redis-url"),
    "redis.data_dir": ("redis_data", "--redis-data"),
    "engine.model": ("model", "--model"),
    "engine.backend": ("backend", "--backend"),
    "engine.device": ("device", "--device"),
}
"""Config keys that `serve` options override: key → (argparse attribute, option)."""


def _formatter(prog: str) -> argparse.RawDescriptionHelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=36)


def _subcommand(
    commands: Subcommands, name: str, summary: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """A subcommand with its one-line help, its description and its examples."""
    return commands.add_parser(
        name, help=summary, description=description, epilog=epilog, formatter_class=_formatter
    )


def register(commands: Subcommands, bench: Subcommands) -> None:
    """Add `serve`, `count`, `zones`, `config`, `bench stream` and `bench soak`."""
    _add_serve(commands)
    _add_count(commands)
    _add_zones(commands)
    _add_config(commands)
    _add_bench_stream(bench)
    _add_bench_soak(bench)


def _add_serve(commands: Subcommands) -> None:
    parser = _subcommand(
        commands,
        "serve",
        "count people on live cameras; publish to Redis and Prometheus; live view",
        "Run the counting service until SIGINT/SIGTERM. Without a config it serves the bundled "
        "demo clip with the shipped model on the CPU. Environment variables CROWDSTREAM_<SECTION>__<KEY> "
        "override the file; the options below override both.",
        SERVE_EPILOG,
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        help="YAML config file (`crowdstream config example` prints one; every key: `crowdstream config "
        "reference`, docs/configuration.md)",
    )
    parser.add_argument(
        "--source",
        action="append",
        metavar="URL",
        help="a camera URL (repeatable); replaces the config's cameras",
    )
    parser.add_argument(
        "--name",
        action="append",
        metavar="NAME",
        help="the name of the --source in the same position (repeatable; default: the URL's host or file name)",
    )
    parser.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default 8080; 0 picks a free one)")
    parser.add_argument(
        "--redis-url",
        help="redis://host:port/db (default: a private redis-server on port 6380, if installed)",
    )
    parser.add_argument(
        "--redis-data",
        metavar="DIR",
        help="keep the embedded Redis's data in DIR across restarts (default: discarded on exit)",
    )
    parser.add_argument("--model", help="model name or file (default: the shipped model)")
    parser.add_argument("--backend", help="auto, onnxruntime, tensorrt or torch")
    parser.add_argument("--device", help="torch backend: auto (CUDA when present), cpu, cuda or cuda:N")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from crowdstream.stream.config import ServiceConfig, cameras_from_urls, load_config
    from crowdstream.stream.service import serve

    values = {key: getattr(args, name) for key, (name, _flag) in SERVE_FLAGS.items()}
    overrides = {key: value for key, value in values.items() if value is not None}
    if args.source or args.name:
        overrides["cameras"] = cameras_from_urls(args.source or [], args.name)
    flags = {key: flag for key, (_name, flag) in SERVE_FLAGS.items()}
    flags["cameras"] = "--source"

    def load(path: Path | None) -> ServiceConfig:
        return load_config(path, overrides=overrides, flags=flags)

    return asyncio.run(serve(load(args.config), args.config, load))


def _add_count(commands: Subcommands) -> None:
    parser = _subcommand(
        commands,
        "count",
        "count people in one image or video file and write the heatmap overlay",
        "One-off counting: prints the count of an image (or of sampled video frames) and "
        "optionally writes the overlay (an image, or a video for video input).",
        COUNT_EPILOG,
    )
    parser.add_argument(
        "path", metavar="IMAGE_OR_VIDEO", help="an image or video file, or 'demo' (the bundled clip)"
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="overlay file to write (.png/.jpg, or .mp4 for video)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--fps", type=float, default=2.0, help="video frames counted per second (default 2)")
    parser.add_argument(
        "--tiles",
        default=DEFAULT_TILES,
        help=f"'adaptive', 'auto' or a grid such as 2x3 (default {DEFAULT_TILES})",
    )
    parser.add_argument("--model", default="default", help="model name or file")
    parser.add_argument("--backend", default="auto", help="auto, onnxruntime, tensorrt or torch")
    parser.set_defaults(handler=_count)


def _count(args: argparse.Namespace) -> int:
    from crowdstream.stream.count import run_count
    from crowdstream.stream.sources import local_path

    return run_count(
        local_path(args.path),
        args.output,
        as_json=args.json,
        fps=args.fps,
        tiles=args.tiles,
        model=args.model,
        backend=args.backend,
    )


def _add_zones(commands: Subcommands) -> None:
    parser = _subcommand(
        commands,
        "zones",
        "print a camera's zones as YAML (as drawn in the page, or from a config file)",
        "Print a camera's zones as the YAML to paste under the camera in a config file: from "
        "the running service (zones drawn in the page's editor) or, with -c, from a config file.",
        ZONES_EPILOG,
    )
    parser.add_argument("camera", metavar="CAMERA", help="the camera id")
    parser.add_argument("--url", default=None, help="the service (default http://127.0.0.1:8080)")
    parser.add_argument("--token", help="the service's http.token (default: $CROWDSTREAM_HTTP__TOKEN)")
    parser.add_argument("-c", "--config", type=Path, help="read the zones from this config file instead")
    parser.set_defaults(handler=_zones)


def _zones(args: argparse.Namespace) -> int:
    import os

    from crowdstream.stream.zones_command import DEFAULT_URL, run_zones

    token = args.token or os.environ.get("CROWDSTREAM_HTTP__TOKEN")
    return run_zones(args.camera, args.url or DEFAULT_URL, token, args.config)


def _add_config(commands: Subcommands) -> None:
    parser = _subcommand(
        commands,
        "config",
        "the service configuration: a commented example to start from, the reference of every key",
        "The service reads one YAML file (serve -c FILE). `config example` prints a commented one with every "
        "section, which serve accepts as it is: the demo clip with two zones, and the keys to change. "
        "`config reference` prints every key with its type, default and description (docs/configuration.md).",
        CONFIG_EPILOG,
    )
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", title="actions")
    example = actions.add_parser(
        "example",
        help="print the commented example configuration",
        description="Print the commented example configuration (every section, the demo clip as its camera).",
        epilog=CONFIG_EPILOG,
        formatter_class=_formatter,
    )
    example.set_defaults(handler=_config_example)
    reference = actions.add_parser(
        "reference",
        help="print every key with its type, default and description (Markdown)",
        description="Print the configuration reference, written from the configuration's models: every key "
        "with its type, limits, default and description (the text of docs/configuration.md).",
        epilog=CONFIG_EPILOG,
        formatter_class=_formatter,
    )
    reference.set_defaults(handler=_config_reference)


def _config_example(_args: argparse.Namespace) -> int:
    sys.stdout.write(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    return 0


def config_reference() -> str:
    """The configuration reference (docs/configuration.md), with the `serve` options that override keys."""
    from crowdstream.stream.config_reference import reference_markdown

    return reference_markdown({key: flag for key, (_attr, flag) in SERVE_FLAGS.items()})


def _config_reference(_args: argparse.Namespace) -> int:
    sys.stdout.write(config_reference())
    return 0


def _add_bench_stream(bench: Subcommands) -> None:
    parser = _subcommand(
        bench,
        "stream",
        "throughput of N 720p file cameras through one worker",
        "Run N 720p video-file cameras through the worker and report sustained counted frames "
        "per second per camera, dropped frames, CPU use, memory and frame age p50/p95.",
        BENCH_STREAM_EPILOG,
    )
    _bench_common(parser)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration (default 30)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=_setting,
        metavar="KEY=VALUE",
        help="a config setting by its dotted key, e.g. decode.skip_unused=false (repeatable)",
    )
    parser.set_defaults(handler=_bench_stream)


def _add_bench_soak(bench: Subcommands) -> None:
    parser = _subcommand(
        bench,
        "soak",
        "long run under faults: every Redis record read back and checked",
        "Serve the demo clip over a real RTSP server to N cameras of the whole service, SIGKILL and restart "
        "that server and the Redis server during the run, then read every record back and report missing, "
        "duplicated, out-of-order and unreadable ones, RSS at 1 and 5 minutes and the end, counted fps, "
        "frame age, reconnects and exceptions. Progress goes to stderr.",
        BENCH_SOAK_EPILOG,
    )
    _bench_common(parser)
    parser.set_defaults(cameras=16, handler=_bench_soak)
    parser.add_argument("--minutes", type=float, default=30.0, help="measured duration (default 30)")
    parser.add_argument("--rtsp-restarts", type=int, default=2, help="RTSP server kills (default 2)")
    parser.add_argument("--redis-restarts", type=int, default=2, help="Redis server kills (default 2)")
    parser.add_argument(
        "--outage-seconds", type=float, default=5.0, help="how long a killed server stays down (default 5)"
    )
    parser.add_argument(
        "--progress-seconds", type=float, default=30.0, help="progress line interval, 0: none (default 30)"
    )


def _setting(text: str) -> tuple[str, object]:
    """KEY=VALUE with a dotted config key; the value is read as a YAML scalar (false, 0, 1.5, text)."""
    import yaml

    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as decode.priority=0, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        return key.strip(), value


def _bench_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cameras", type=int, default=8, help="number of cameras (default %(default)s)")
    parser.add_argument("--max-fps", type=float, default=2.0, help="per-camera counting rate (default 2)")
    parser.add_argument(
        "--tiles",
        default=DEFAULT_TILES,
        help=f"'adaptive', 'auto' or RxC per frame (default {DEFAULT_TILES})",
    )
    parser.add_argument("--model", default="default", help="model name or file")
    parser.add_argument("--backend", default="auto", help="auto, onnxruntime, tensorrt or torch")
    parser.add_argument("--device", default="auto", help="torch backend: auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--max-batch", type=int, default=32, help="most tiles per inference call (default 32)"
    )
    parser.add_argument(
        "--source",
        action="append",
        metavar="URL",
        help="a camera URL (e.g. rtsp://…) used instead of a demo-clip camera (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _bench_stream(args: argparse.Namespace) -> int:
    from crowdstream.stream.bench import BenchOptions, print_report, run_stream_bench

    options = BenchOptions.from_args(args)
    print_report(run_stream_bench(options, args.seconds, dict(args.set)), as_json=args.json)
    return 0


def _bench_soak(args: argparse.Namespace) -> int:
    from crowdstream.engines.errors import CrowdstreamError
    from crowdstream.stream.bench import BenchOptions
    from crowdstream.stream.soak.report import failures, print_soak
    from crowdstream.stream.soak.run import SoakOptions, run_soak

    numbers = {
        "--minutes": args.minutes,
        "--outage-seconds": args.outage_seconds,
        "--cameras": args.cameras,
    }
    for flag, value in numbers.items():
        if value <= 0:
            raise CrowdstreamError(f"bench soak: {flag} must be positive, got {value:g}")
    if min(args.rtsp_restarts, args.redis_restarts, args.progress_seconds) < 0:
        raise CrowdstreamError("bench soak: restarts and --progress-seconds cannot be negative")
    options = SoakOptions(
        BenchOptions.from_args(args),
        args.minutes,
        args.rtsp_restarts,
        args.redis_restarts,
        args.outage_seconds,
        args.progress_seconds,
    )
    report = run_soak(options)
    print_soak(report, as_json=args.json)
    return 1 if failures(report) else 0
