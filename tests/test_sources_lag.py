"""Live-stream lag: the sliding-minimum baseline and the skip-to-a-fresh-key-frame policy, on packet
timings generated from a model of a camera and a reader that stalls."""

from __future__ import annotations

import pytest

from crowdstream.stream.sources.lag import CatchUp, LiveLag

FPS = 30
GOP = 30  # a key frame every second


def replay(stall_at: int | None, stall: float, packets: int = 600, clock_rate: float = 1.0) -> list[bool]:
    """Which packets a CatchUp skips when a camera sends at FPS (its clock running at `clock_rate` of
    ours) and the reader, normally instant, stalls for `stall` seconds before packet `stall_at`. A
    skipped packet costs nothing; a decoded one 5 ms."""
    catch_up, decisions, reader = CatchUp("test"), [], 0.0
    for i in range(packets):
        media_time = i / FPS
        arrival = 100.0 + media_time / clock_rate
        reader = max(reader + (stall if i == stall_at else 0.0), arrival)
        skipped = catch_up.skip(media_time, i % GOP == 0, reader)
        reader += 0.0 if skipped else 0.005
        decisions.append(skipped)
    return decisions


def test_a_reader_that_keeps_up_never_skips() -> None:
    assert not any(replay(None, 0.0))


def test_camera_clock_drift_is_not_mistaken_for_lag() -> None:
    # A camera clock 1 % slow (far worse than real ones) drifts 3 s in these 5 minutes: a fixed baseline
    # would read that as lag; the sliding one sees at most 0.3 s within its window.
    assert not any(replay(None, 0.0, packets=9000, clock_rate=0.99))


def test_short_hiccups_are_decoded_through() -> None:
    assert not any(replay(100, 0.5))


def test_a_stalled_reader_skips_its_backlog_and_resumes_on_a_fresh_key_frame() -> None:
    decisions = replay(100, 3.0)
    skipped = [i for i, skip in enumerate(decisions) if skip]
    assert skipped, "three seconds of backlog must not be decoded frame by frame"
    assert skipped[0] == 100, "the first packet read after the stall waited three seconds"
    assert skipped == list(range(100, skipped[-1] + 1)), "one contiguous skip"
    resumed = skipped[-1] + 1
    assert resumed % GOP == 0, "decoding restarts on a key frame"
    assert resumed >= 100 + 2 * FPS, "the stale frames queued during the stall are among those skipped"
    assert not any(decisions[resumed:])


def test_lag_is_measured_against_the_freshest_packet_of_the_window() -> None:
    lag = LiveLag(window=10.0)
    assert lag(0.0, 50.0) == 0.0
    assert lag(1.0, 51.2) == pytest.approx(0.2)
    assert lag(2.0, 51.9) == 0.0, "a fresher packet becomes the baseline"
    assert lag(3.0, 53.4) == pytest.approx(0.5)
    assert lag(20.0, 70.4) == 0.0, "baselines older than the window are forgotten"
