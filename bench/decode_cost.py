"""CPU time a camera reader spends per frame of video, under each decode setting, in one table.

Plays a video (default: the bundled 720p demo clip, 12 fps, x264 with B-frames) through the service's own
reader (stream.sources.capture.AvReader), unpaced, and reports process CPU milliseconds per frame of the
video: FFmpeg's own thread choice, one thread, one thread skipping non-reference frames (what an unwatched
camera counted at 2 fps does), and the BGR conversion of every frame (what the reader did before
conversions became lazy). CPU time, not wall time, so the figures hold on a busy machine too:

    python bench/decode_cost.py                     # the demo clip, 3 passes per setting
    python bench/decode_cost.py clip.mp4 --passes 5 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crowdstream.stream.sources import DEMO_CLIP  # noqa: E402
from crowdstream.stream.sources.capture import AvReader  # noqa: E402

SETTINGS = {
    "ffmpeg-threads": {"threads": 0, "wanted_fps": None, "convert": False},
    "1-thread": {"threads": 1, "wanted_fps": None, "convert": False},
    "1-thread, non-reference skipped": {"threads": 1, "wanted_fps": 2.0, "convert": False},
    "1-thread, every frame to BGR": {"threads": 1, "wanted_fps": None, "convert": True},
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_pass(path: Path, threads: int, wanted_fps: float | None, convert: bool) -> tuple[int, float]:
    """(frames decoded, CPU seconds) of one unpaced pass over the video."""
    reader = AvReader(str(path), finite=True, threads=threads)
    reader.wanted_fps = wanted_fps
    began, decoded = cpu_seconds(), 0
    for pixels, _ in reader.frames():
        decoded += 1
        if convert:
            pixels()
    return decoded, cpu_seconds() - began


def measure(path: Path, passes: int) -> dict[str, dict[str, float]]:
    """Per setting: frames decoded, and the least disturbed pass's CPU ms per frame of the video (the
    first setting decodes them all)."""
    rows: dict[str, dict[str, float]] = {}
    for name, setting in SETTINGS.items():
        runs = [one_pass(path, **setting) for _ in range(passes)]
        frames = rows[next(iter(rows))]["decoded"] if rows else runs[0][0]
        rows[name] = {
            "decoded": runs[0][0],
            "frames": frames,
            "cpu_ms_per_video_frame": round(1000 * min(spent for _, spent in runs) / frames, 3),
        }
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "video", nargs="?", type=Path, default=DEMO_CLIP, help="a video file (default: the demo clip)"
    )
    parser.add_argument(
        "--passes", type=int, default=3, help="passes per setting; the fastest counts (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    if not args.video.is_file():
        parser.error(f"no such video file: {args.video}")
    rows = measure(args.video, max(1, args.passes))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'setting':34} {'decoded':>12} {'CPU ms per video frame':>24}")
    for name, row in rows.items():
        print(f"{name:34} {row['decoded']:>5} of {row['frames']:<5} {row['cpu_ms_per_video_frame']:>24}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
