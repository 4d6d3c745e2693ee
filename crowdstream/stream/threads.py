"""Thread names the operating system sees, and CPU time per named thread group.

Python's thread names live in the interpreter only; `top -H`, py-spy and /proc show every thread as
"python". Naming the OS thread (Linux prctl PR_SET_NAME) makes them readable there, and threads a
library starts (FFmpeg's slice threads, ONNX Runtime's pool) inherit the name of the thread that
started them, so one name covers a reader and its decoder helpers (FFmpeg's frame threads name
themselves, "av:h264:df0"). `bench stream` then reports where the CPU goes: decoders, inference,
rendering, the event loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

PR_SET_NAME = 15
MAX_NAME = 15  # the kernel keeps 15 bytes of a thread's name
_NUMBERED = re.compile(r"[_\d]+$")


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
"""The symbols the process already loaded (libc's prctl among them), without searching for a library."""


def set_os_thread_name(name: str) -> None:
    """Name the calling thread for the OS (first 15 bytes); a no-op where prctl does not exist."""
    if _LIBC is not None and hasattr(_LIBC, "prctl"):
        _LIBC.prctl(PR_SET_NAME, name.encode()[:MAX_NAME], 0, 0, 0)


def os_thread_name() -> str:
    """The calling thread's OS name ("" where it cannot be read)."""
    try:
        return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()
    except OSError:
        return ""


@contextlib.contextmanager
def os_thread_named(name: str) -> Iterator[None]:
    """Run a block under another OS thread name, so the threads a library starts in it (ONNX Runtime's
    intra-op pool when a session is created) inherit that name; the old name comes back afterwards."""
    previous = os_thread_name()
    set_os_thread_name(name)
    try:
        yield
    finally:
        set_os_thread_name(previous)


def thread_group(name: str) -> str:
    """The group of a thread name: what follows its first "-" (a camera) and a trailing number removed
    ("source-cam12" and "source-gate" are "source", "inference_0" is "inference"). FFmpeg names its
    frame threads itself ("av:h264:df0"): they are "ffmpeg"."""
    if name.startswith("av:"):
        return "ffmpeg"
    kind = name.split("-", 1)[0]
    return _NUMBERED.sub("", kind) or kind


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process's living threads, summed per group.
    A Python thread goes by its Python name, any other (a library's) by its OS name, inherited.
    Threads that already ended are not in /proc any more: take differences over a window in which the
    threads stay up (a benchmark's measured window)."""
    ticks = os.sysconf("SC_CLK_TCK")
    python_names = {thread.native_id: thread.name for thread in threading.enumerate()}
    totals: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended while we looked
            continue
        name = python_names.get(int(task.name)) or stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: fields 14 and 15 of stat
        group = thread_group(name)
        totals[group] = totals.get(group, 0.0) + seconds
    return totals


def cores_by_group(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Average cores each group kept busy between two `thread_cpu_seconds` readings, busiest first."""
    used = {name: (after[name] - before.get(name, 0.0)) / seconds for name in after}
    return {name: round(cores, 3) for name, cores in sorted(used.items(), key=lambda kv: -kv[1]) if cores > 0}
