"""Whether a camera's count can be trusted: a verdict from its last few count self-checks, not from one.

Each self-check (engines.uncertainty) judges one frame, and a frame-by-frame flag flaps: on the issue's
real surveillance camera about half the frames' two counts differed by more than a fifth, so a flag held
"for 10 minutes" would never hold, and a card whose button comes and goes every 30 seconds says nothing.
A camera is uncertain when more than CAMERA_SHARE of its last RECENT_CHECKS self-checks were. Measured
per set with the shipped INT8 default (`crowdstream eval A|B --holdout --json`, `crowdstream check
cameras --json`, 2026-12-07, a 2-vCPU Zen 4 host): photographs like the training ones are flagged on
9 % (hold-out B) and 22 % (hold-out A) of their images, the camera-like sets on 57 % (painted elevated
views) to 100 % (elevated, degraded A and B); a camera of the first kind seldom passes 40 % over ten
checks, one of the second seldom drops below it.

>>> from crowdstream.engines.uncertainty import judge
>>> checks = RecentChecks()
>>> for flagged in [True, False, True, False, False]:
...     checks = checks.add(judge(20.0, 12.0 if flagged else 19.0, detail=0.7))
>>> checks.share, checks.uncertain
(0.4, False)
>>> checks.add(judge(20.0, 11.0, detail=0.7)).uncertain
True
"""

from __future__ import annotations

from dataclasses import dataclass

from crowdstream.engines.uncertainty import Uncertainty

RECENT_CHECKS = 10
"""A camera is judged on its last this many self-checks: 5 minutes at the default 30 s
(`engine.self_check_every`)."""
CAMERA_SHARE = 0.4
"""A camera is uncertain when more than this share of its recent self-checks were (see the module note)."""


def uncertain_share(share: float) -> bool:
    """Whether a camera whose checks (or a clip whose frames) were uncertain in this share is uncertain."""
    return share > CAMERA_SHARE


@dataclass(frozen=True)
class RecentChecks:
    """A camera's last RECENT_CHECKS self-checks, oldest first, and the verdict they give."""

    checks: tuple[Uncertainty, ...] = ()

    def add(self, check: Uncertainty) -> RecentChecks:
        """These checks with `check` as the newest, the oldest dropped beyond RECENT_CHECKS."""
        return RecentChecks((*self.checks, check)[-RECENT_CHECKS:])

    @property
    def latest(self) -> Uncertainty | None:
        return self.checks[-1] if self.checks else None

    @property
    def share(self) -> float:
        """The share of these checks that found the frame's count uncertain (0 without any)."""
        return sum(check.uncertain for check in self.checks) / len(self.checks) if self.checks else 0.0

    @property
    def uncertain(self) -> bool:
        return uncertain_share(self.share)

    @property
    def reason(self) -> str:
        """Why the camera is uncertain, in words ("" when it is not): how many checks, and the newest
        uncertain one's reason."""
        if not self.uncertain:
            return ""
        flagged = [check for check in self.checks if check.uncertain]
        tally = f"{len(flagged)} of the last {len(self.checks)} self-checks uncertain"
        return f"{tally}; the latest: {flagged[-1].reason}"


NO_CHECKS = RecentChecks()
"""A camera before its first self-check."""
