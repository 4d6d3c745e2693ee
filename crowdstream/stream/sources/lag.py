"""How far behind real time a live stream is being read, and skipping the backlog when it is too far.

A live camera does not wait for us: when decoding falls behind (a starved CPU, a long pause), packets
pile up in socket buffers and every frame we publish is older than it looks. The camera's own clock
tells: a packet read the moment it arrived has the smallest (wall clock − media time) offset; any packet
with a larger offset waited that much longer. The baseline is a sliding minimum, so slow drift between
the camera's clock and ours does not accumulate into a phantom lag.
"""

from __future__ import annotations

import logging
from collections import deque

LAG_WINDOW = 30.0  # seconds of offsets kept for the baseline
MAX_LIVE_LAG = 1.0  # seconds a live stream may trail real time before its backlog is skipped

log = logging.getLogger(__name__)


class LiveLag:
    """Feed (media time, wall time) per packet; get back how many seconds it waited beyond the freshest."""

    def __init__(self, window: float = LAG_WINDOW) -> None:
        self.window = window
        self._offsets: deque[tuple[float, float]] = deque()  # (wall time, offset), offsets increasing

    def __call__(self, media_time: float, now: float) -> float:
        offset = now - media_time
        while self._offsets and self._offsets[-1][1] >= offset:
            self._offsets.pop()
        self._offsets.append((now, offset))
        while self._offsets[0][0] < now - self.window:
            self._offsets.popleft()
        return offset - self._offsets[0][1]


class CatchUp:
    """Decides, packet by packet, whether a live stream's packet should be skipped undecoded.

    Once packets wait more than `max_lag` s, everything is skipped up to the first key frame that is
    fresh again (within half of it): the stale backlog is read off the socket at demuxing speed instead
    of being decoded frame by frame, and decoding restarts cleanly at a key frame."""

    def __init__(self, label: str, max_lag: float = MAX_LIVE_LAG) -> None:
        self.label = label
        self.max_lag = max_lag
        self.behind = False
        self._lag = LiveLag()
        self._run = 0  # packets skipped in the current catch-up

    def skip(self, media_time: float | None, keyframe: bool, now: float) -> bool:
        lag = self._lag(media_time, now) if media_time is not None else 0.0
        if not self.behind and lag > self.max_lag:
            self.behind, self._run = True, 0
            log.warning(
                "live stream behind, skipping to a fresh key frame",
                extra={"url": self.label, "lag": round(lag, 2)},
            )
        elif self.behind and keyframe and lag <= self.max_lag / 2:
            self.behind = False
            log.info("live stream caught up", extra={"url": self.label, "skipped": self._run})
        self._run += self.behind
        return self.behind
