"""A camera's verdict comes from its recent self-checks, not the latest one: a camera whose frames are
flagged half the time stays uncertain, one flagged now and then stays trusted, and old checks age out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crowdstream.engines.uncertainty import judge
from crowdstream.stream.self_checks import CAMERA_SHARE, RECENT_CHECKS, RecentChecks

FLAGGED = judge(20.0, 12.0, detail=0.7)  # 40 % apart
SOFT = judge(20.0, 19.0, detail=0.45)  # agreeing counts on a soft frame
AGREED = judge(20.0, 19.0, detail=0.7)


def checked(*checks) -> RecentChecks:
    recent = RecentChecks()
    for check in checks:
        recent = recent.add(check)
    return recent


def test_a_camera_flagged_every_other_frame_stays_uncertain_between_its_flags() -> None:
    flapping = [FLAGGED, AGREED] * RECENT_CHECKS
    verdicts = [checked(*flapping[: n + 1]).uncertain for n in range(len(flapping))]
    assert all(verdicts)  # a frame-by-frame flag would say no every other check


def test_a_camera_flagged_now_and_then_stays_trusted() -> None:
    now_and_then = ([FLAGGED] + [AGREED] * 4) * 4
    recent = checked(*now_and_then)
    assert recent.share == 0.2 and not recent.uncertain and recent.reason == ""
    verdicts = [checked(*now_and_then[: n + 1]).uncertain for n in range(len(now_and_then))]
    assert verdicts[:2] == [True, True] and not any(verdicts[2:])  # judged from its first check on


def test_the_share_counts_the_last_checks_only_and_the_threshold_is_strict() -> None:
    recent = checked(*[FLAGGED] * RECENT_CHECKS, *[AGREED] * RECENT_CHECKS)
    assert len(recent.checks) == RECENT_CHECKS and recent.share == 0.0  # the flagged ones aged out
    at_threshold = checked(*[FLAGGED] * 4, *[AGREED] * 6)
    assert at_threshold.share == CAMERA_SHARE and not at_threshold.uncertain


def test_the_reason_counts_the_flags_and_quotes_the_newest_flagged_check() -> None:
    recent = checked(FLAGGED, AGREED, SOFT, AGREED)
    assert recent.uncertain
    assert recent.reason == f"2 of the last 4 self-checks uncertain; the latest: {SOFT.reason}"
    assert recent.latest == AGREED


def test_no_checks_no_verdict() -> None:
    assert RecentChecks().latest is None and RecentChecks().share == 0.0 and not RecentChecks().uncertain


@given(st.lists(st.booleans(), max_size=40))
def test_the_verdict_is_the_share_of_the_last_ten_checks_whatever_came_before(flags: list[bool]) -> None:
    recent = checked(*(FLAGGED if flag else AGREED for flag in flags))
    window = flags[-RECENT_CHECKS:]
    assert len(recent.checks) == len(window)
    share = sum(window) / len(window) if window else 0.0
    assert recent.share == pytest.approx(share)
    assert recent.uncertain == (share > CAMERA_SHARE)
    assert (recent.reason != "") == recent.uncertain
    assert recent.reason.startswith(f"{sum(window)} of the last {len(window)} ") or not recent.uncertain
