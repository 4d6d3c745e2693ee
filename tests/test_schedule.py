"""The counting schedule: due times on a fixed grid per camera, offsets that spread cameras over a
period, and the one definition of a dropped frame (due, delivered by the camera, never counted)."""

from __future__ import annotations

import pytest

from crowdstream.stream.schedule import Schedule, spread_phase


def test_cameras_are_spread_over_the_period() -> None:
    assert spread_phase(0) == 0.0
    phases = [spread_phase(i) for i in range(8)]
    assert all(0 <= p < 1 for p in phases) and len({round(p, 6) for p in phases}) == 8
    assert min(abs(a - b) for a in phases for b in phases if a != b) > 0.05  # no two cameras together


def test_frames_missed_while_due_are_dropped() -> None:
    schedule = Schedule.at_most(2.0)  # every 0.5 s
    assert schedule.count(seq=1, now=100.0) == 0  # first frame: due again half a second later
    assert schedule.next_due == pytest.approx(100.5)
    assert not schedule.due(100.4) and schedule.due(100.5)
    assert schedule.count(seq=6, now=100.6) == 0  # on time: the frames in between were not due
    assert schedule.next_due == pytest.approx(101.0)
    # the model was busy: the slots at 101.0 and 101.5 passed unused while the camera sent 15 frames
    assert schedule.count(seq=22, now=102.3) == 2
    assert schedule.next_due == pytest.approx(102.5)
    # the camera was down: one frame came while 15 slots passed, so only one was lost
    assert schedule.count(seq=24, now=110.2) == 1
    assert schedule.next_due == pytest.approx(110.5)


def test_without_max_fps_every_frame_is_due() -> None:
    schedule = Schedule.at_most(None)
    assert schedule.due(0.0)
    assert [schedule.count(seq, now=1.0) for seq in (3, 4, 9, 10)] == [0, 0, 4, 0]


def test_a_camera_starts_its_grid_at_its_phase() -> None:
    schedule = Schedule.at_most(4.0, phase=0.5)  # every 0.25 s, offset by half a period
    schedule.count(seq=1, now=10.0)
    assert schedule.next_due == pytest.approx(10.375)


def test_a_new_reader_restarts_the_numbering() -> None:
    schedule = Schedule.at_most(None)
    schedule.count(seq=500, now=1.0)
    schedule.restart()
    assert schedule.count(seq=1, now=2.0) == 0 and schedule.count(seq=3, now=2.1) == 1
