"""Where each thread group of `crowdstream bench stream` spends its CPU, from a py-spy profile.

`bench stream --json` gives the CPU cores per thread group (readers, the inference thread, ONNX Runtime's
pool, the event loop); this splits each group into phases (decoding, BGR conversion, tiling, the model,
stitching, readings) by the functions on its sampled stacks. Record while a benchmark runs, then:

    crowdstream bench stream --cameras 16 --model crowd-lite0-int8 --seconds 40 &
    sleep 30; py-spy record -p $! -d 15 -r 50 --threads --native --format raw -o stacks.txt
    python bench/spy_phases.py stacks.txt

Samples of threads that wait (sleeping, blocked on a lock, a condition or the GIL) are left out, so the
shares are of CPU time, not wall time.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

PHASES = {
    "BGR conversion": "AvReader._image",
    "model (engine.infer)": "Engine.infer",
    "decoding (FFmpeg)": "AvReader._decode",
    "tiling": "prepare_frame",
    "refinement windows": "_refine",
    "stitching": "stitch",
    "choosing windows": "refinement_windows",
    "readings": "Worker._read",
    "publishing": "Worker._publish",
    "live view": "render_live",
}
"""Phase → a function on its stacks; a sample belongs to the phase whose function is nearest its leaf."""
WAITING = re.compile(
    r"pthread_cond|pthread_mutex_lock|PyThread_acquire_lock|sem_\w*wait|futex|epoll_wait|nanosleep|take_gil"
)
"""Functions of a thread that waits (for a frame, a lock, a condition, the GIL), looked for near the leaf."""
_NUMBERED = re.compile(r"[_\d]+$")


def phase_of(stack: str) -> str:
    positions = {name: stack.rfind(marker) for name, marker in PHASES.items()}
    name, position = max(positions.items(), key=lambda item: item[1])
    return name if position >= 0 else "other"


def summarise(lines: list[str]) -> dict[str, collections.Counter]:
    """Samples per thread group and phase; waiting samples are dropped."""
    groups: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        match = re.match(r"thread \(\w+\): ([^;]*)", stack)
        if not match or not count.isdigit() or WAITING.search(";".join(stack.split(";")[-3:])):
            continue
        group = _NUMBERED.sub("", match.group(1).split("-", 1)[0])
        groups[group][phase_of(stack)] += int(count)
    return groups


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stacks", type=Path, help="py-spy record --format raw output")
    args = parser.parse_args()
    if not args.stacks.is_file():
        parser.error(f"no such file: {args.stacks}")
    groups = summarise(args.stacks.read_text().splitlines())
    total = sum(sum(phases.values()) for phases in groups.values()) or 1
    for group, phases in sorted(groups.items(), key=lambda item: -sum(item[1].values())):
        samples = sum(phases.values())
        shares = ", ".join(f"{name} {100 * n / samples:.0f} %" for name, n in phases.most_common())
        print(f"{group:12} {100 * samples / total:5.1f} % of busy samples: {shares}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
