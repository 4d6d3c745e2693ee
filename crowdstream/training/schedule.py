"""Learning-rate schedule: linear warm-up, then cosine decay to a floor, driven by training progress.

Progress is the fraction of planned steps done — or, with a time budget, the larger of that and the
fraction of the budget's wall-clock seconds spent. A budget makes a run end annealed on time even when the
machine is shared and slower than planned; the log and model card record what actually ran.

>>> schedule = WarmupCosine(max_lr=1e-3, total_steps=100_000, budget_seconds=480 * 60)
>>> schedule.progress(step=2_000, elapsed=120 * 60)  # a quarter of the budget, 2 % of the steps
0.25
>>> schedule.seconds_left(step=2_000, elapsed=120 * 60) / 60
360.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WarmupCosine:
    max_lr: float
    total_steps: int
    budget_seconds: float | None = None
    warmup: float = 0.05
    floor: float = 0.02

    def progress(self, step: int, elapsed: float) -> float:
        done = step / max(1, self.total_steps)
        if self.budget_seconds:
            done = max(done, elapsed / self.budget_seconds)
        return min(done, 1.0)

    def seconds_left(self, step: int, elapsed: float) -> float:
        """Training seconds until progress reaches 1 at the rate so far (exact for a run its budget ends; the
        time spent validating between epochs comes on top)."""
        done = self.progress(step, elapsed)
        return elapsed * (1 - done) / done if done > 0 else float("inf")

    def lr(self, progress: float) -> float:
        if progress < self.warmup:
            return self.max_lr * max(progress / self.warmup, 0.01)
        cosine = 0.5 * (1 + math.cos(math.pi * (progress - self.warmup) / (1 - self.warmup)))
        return self.max_lr * (self.floor + (1 - self.floor) * cosine)
