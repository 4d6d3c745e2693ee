"""How much of a video stream is decoded, by how many threads, at what priority: the `decode` section.

Sixteen cameras of 12 fps counted at 2 fps each decode 192 frames a second to count 32. What can be saved
without changing a counted pixel: frames that no other frame refers to (H.264 non-reference B-frames,
about 44 % of the demo clip) need not be decoded while nobody watches the camera, and a frame is
converted to BGR only when it is taken (stream.sources.source.Frame). What keeps decoders from starving
inference: one decoder thread per camera (the cameras already decode in parallel; FFmpeg's extra
threads per stream only add threads) at a lower scheduling priority than the worker, so the model runs
first and decoding fills the gaps. docs/performance.md has the measurements behind the defaults.
"""

from __future__ import annotations

import logging
import os
import threading

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

REFERENCE_SHARE = 0.25
"""Non-reference frames are skipped only while the frames wanted are at most this share of the stream's
rate: reference frames alone are at least a quarter of any common GOP (IBBBP), so they still come more
often than the counter takes them."""


class DecodeConfig(BaseModel):
    """Decoder settings shared by every camera of a worker."""

    model_config = ConfigDict(extra="forbid")

    threads: int = Field(
        1,
        ge=0,
        le=16,
        description="FFmpeg threads per camera (0: FFmpeg's choice; over 1: frame threads, a frame of delay each)",
    )
    priority: int = Field(
        5, ge=0, le=19, description="nice value added to reader threads, so inference runs first (0: equal)"
    )
    skip_unused: bool = Field(
        True, description="skip non-reference frames of cameras nobody watches that count a few fps"
    )


def skip_frames(wanted_fps: float | None, rate: float, skip_unused: bool = True) -> str:
    """FFmpeg's skip_frame setting for a stream of `rate` fps of which `wanted_fps` frames a second are
    needed (None: every frame, e.g. somebody watches): "NONREF" when reference frames alone suffice."""
    if skip_unused and wanted_fps is not None and wanted_fps <= REFERENCE_SHARE * rate:
        return "NONREF"
    return "DEFAULT"


def lower_priority(niceness: int) -> None:
    """Lower the calling thread's scheduling priority by `niceness` (Linux: nice is per thread, and
    threads started from it, like FFmpeg's, inherit it). Never fails: a platform without per-thread
    priorities just decodes at normal priority."""
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except OSError as exc:
        log.debug("reader thread priority unchanged", extra={"error": str(exc)})
