"""The count's self-check: two tilings that disagree, or a soft frame with people in it, make a count
uncertain; agreeing counts on a sharp frame do not; and the flag rates are counted against the truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdstream.engines.counting import count_frames
from crowdstream.engines.uncertainty import (
    MAX_SPREAD,
    SOFT_DETAIL,
    count_spread,
    detail_ratio,
    frame_uncertainty,
    judge,
)
from crowdstream.training.metrics import flag_rates


class PerInputEngine:
    """Every model input reads `people` people, whatever it shows: more tiles, more people."""

    backend = "fake"
    model_path = Path("per-input.onnx")

    def __init__(self, people: float):
        self.people = people

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        density = np.full((len(batch), 1, 56, 56), self.people / 56 / 56, np.float32)
        return density, np.full(len(batch), self.people, np.float32)


def sharp_frame(height: int = 480, width: int = 640) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_the_spread_is_relative_to_the_larger_count_and_to_at_least_three_people() -> None:
    assert count_spread(30.0, 24.0) == pytest.approx(0.2)
    assert count_spread(24.0, 30.0) == pytest.approx(0.2)
    assert count_spread(0.0, 1.5) == pytest.approx(0.5)  # 1.5 people of 3
    assert count_spread(0.0, 0.0) == 0.0


def test_a_sharp_photo_has_more_fine_detail_than_the_same_photo_upscaled_or_blurred() -> None:
    photo = cv2.GaussianBlur(sharp_frame(), (0, 0), 0.7)
    upscaled = cv2.resize(cv2.resize(photo, (320, 240), interpolation=cv2.INTER_AREA), (640, 480))
    blurred = cv2.GaussianBlur(photo, (0, 0), 1.5)
    assert detail_ratio(photo) > SOFT_DETAIL
    assert detail_ratio(upscaled) < SOFT_DETAIL
    assert detail_ratio(blurred) < SOFT_DETAIL


def test_judge_flags_disagreeing_counts_and_soft_frames_with_people_only() -> None:
    assert not judge(20.0, 19.0, detail=0.7).uncertain
    assert judge(20.0, 12.0, detail=0.7).uncertain  # 40 % apart
    assert judge(20.0, 19.0, detail=0.45).uncertain  # soft, 20 people counted
    assert not judge(1.0, 1.2, detail=0.45).uncertain  # soft but empty: nothing to get wrong


def test_the_reason_names_the_rule_that_fired_and_only_that_one() -> None:
    """A soft frame whose two counts agree must not be explained by a disagreement (`count` once printed
    "uncertain: 9% apart at two tilings" for such a frame)."""
    agreeing_soft = judge(20.0, 19.0, detail=0.45)
    assert "soft" in agreeing_soft.reason and "tilings" not in agreeing_soft.reason
    disagreeing_sharp = judge(20.0, 12.0, detail=0.7)
    assert "20 and 12" in disagreeing_sharp.reason and "soft" not in disagreeing_sharp.reason
    both = judge(20.0, 12.0, detail=0.45)
    assert "tilings" in both.reason and "soft" in both.reason
    assert judge(20.0, 19.0, detail=0.7).reason == ""
    assert judge(20.0, 19.0, detail=0.45).as_dict()["reason"] == agreeing_soft.reason


def test_a_frame_read_as_empty_is_not_flagged_by_a_second_count_that_finds_texture_in_it() -> None:
    assert not judge(0.0, 9.2, detail=0.7).uncertain  # a cobweb photo: 0.0, then 9.2 at finer tiles
    assert judge(1.0, 7.8, detail=0.7).uncertain  # one person read where the finer tiles see eight


def test_a_count_that_grows_with_the_number_of_tiles_is_uncertain() -> None:
    engine, frame = PerInputEngine(10.0), sharp_frame()
    (first,) = count_frames(engine, [frame], "auto")  # 640x480: one tile
    judged = frame_uncertainty(engine, frame, first)
    assert first.count == pytest.approx(10.0)
    assert judged.second_count == pytest.approx(40.0)  # 2x2 finer tiles
    assert judged.spread == pytest.approx(0.75) and judged.spread > MAX_SPREAD and judged.uncertain


def test_an_empty_sharp_frame_read_as_empty_is_not_uncertain() -> None:
    engine, frame = PerInputEngine(0.0), sharp_frame()
    (first,) = count_frames(engine, [frame], "adaptive")
    judged = frame_uncertainty(engine, frame, first)
    assert judged.as_dict()["uncertain"] is False and judged.second_count == 0.0


def test_flag_rates_count_flags_among_large_and_small_errors() -> None:
    predicted = [10.0, 50.0, 0.5, 100.0, 20.0]
    truth = [10.0, 20.0, 0.0, 50.0, 21.5]  # small, large, small, large, small (1.5 off: within 10 %)
    flagged = [False, True, True, False, False]
    rates = flag_rates(predicted, truth, flagged)
    assert rates["flagged"] == 2
    assert (rates["large_errors"], rates["large_flagged"]) == (2, 0.5)
    assert (rates["small_errors"], rates["small_flagged"]) == (3, pytest.approx(1 / 3))


def test_flag_rates_say_null_where_there_is_nothing_to_rate() -> None:
    rates = flag_rates([0.0, 0.5], [0.0, 0.0], [False, False])  # no large errors at all
    assert rates["large_errors"] == 0 and rates["large_flagged"] is None and rates["small_flagged"] == 0.0
