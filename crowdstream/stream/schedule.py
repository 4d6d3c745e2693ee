"""When each camera's next frame is due for counting, and the one definition of a dropped frame.

A camera counts at most `max_fps` frames a second on a fixed grid of due times. A frame is **dropped**
when it was due for counting and never counted: a due time passed while the worker was busy, and the
camera delivered a frame meanwhile. Without `max_fps` every frame is due, so every frame between two
counted ones is dropped. Frames are numbered by the source (`Frame.seq`, which also counts frames a
live reader skipped undecoded), so the gap between two counted frames says what the camera delivered.
"""

from __future__ import annotations

from dataclasses import dataclass

GOLDEN_RATIO = 0.6180339887
"""Cameras' grids are offset by multiples of this fraction of a period, so with capacity to spare each
cycle carries a few cameras (short batches, young frames) instead of all of them at once."""


def spread_phase(index: int) -> float:
    """The grid offset, as a fraction of a period, of the `index`-th camera (0, 0.618, 0.236, …)."""
    return (index * GOLDEN_RATIO) % 1.0


@dataclass
class Schedule:
    """One camera's due times: `period` seconds apart (0: every frame is due), offset by `phase` periods."""

    period: float
    phase: float = 0.0
    next_due: float = 0.0  # 0 until the first frame is counted
    last_seq: int = 0  # the last counted frame's number (0: none yet)

    @classmethod
    def at_most(cls, max_fps: float | None, phase: float = 0.0) -> Schedule:
        return cls(1.0 / max_fps if max_fps else 0.0, phase)

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def count(self, seq: int, now: float) -> int:
        """Record that frame `seq` is counted at `now`; return how many frames were dropped since the
        last counted one. The grid advances past every due time that went unused."""
        delivered = seq - self.last_seq - 1 if self.last_seq else 0
        self.last_seq = seq
        if not self.period:
            return max(0, delivered)
        if self.next_due == 0.0:  # first frame: start the grid at the camera's phase
            self.next_due = now + self.period * (1.0 + self.phase)
            return 0
        missed = int((now - self.next_due) // self.period)
        self.next_due += (missed + 1) * self.period
        return max(0, min(missed, delivered))

    def restart(self) -> None:
        """Forget the grid and the frame numbers (a new reader numbers its frames from 1 again)."""
        self.next_due, self.last_seq = 0.0, 0
