"""The demo clip made long enough to serve for a whole soak: its H.264 packets copied back to back
(no decoding or encoding), timestamps shifted by the clip's length each round, so an RTSP client that
stays connected for the whole run never reaches the end (an end would read as a reconnect)."""

from __future__ import annotations

import math
from pathlib import Path

import av


def loop_clip(source: Path, target: Path, seconds: float) -> Path:
    """Write `source` repeated until it lasts at least `seconds` to `target` (an MP4); returns `target`."""
    with av.open(str(source)) as first:
        stream = first.streams.video[0]
        length = float(stream.duration * stream.time_base) if stream.duration else float(first.duration) / 1e6
    rounds = max(1, math.ceil(seconds / length))
    with av.open(str(target), "w") as output:
        out_stream = None
        for round_ in range(rounds):
            with av.open(str(source)) as clip:
                video = clip.streams.video[0]
                if out_stream is None:
                    out_stream = output.add_stream_from_template(video)
                shift = round(round_ * length / video.time_base)
                for packet in clip.demux(video):
                    if packet.dts is None:
                        continue  # the demuxer's flush packet
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = out_stream
                    output.mux(packet)
    return target
