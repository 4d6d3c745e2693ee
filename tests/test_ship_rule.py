"""The rule that decides whether a candidate replaces the shipped default (training.ship_rule), on outputs
shaped like `crowdstream eval --baseline --json`, `check cameras --json` and `check negatives --json`."""

from __future__ import annotations

import copy

import pytest

from crowdstream.training.ship_rule import check_figures, holdout_figures, ship


def checks(elevated: float = 4.27, free: float = 0.41, grace: float = 3.48) -> dict:
    """A `check cameras` + `check negatives` pair with the shipped default's figures (INT8, AMD EPYC host)."""
    cameras = {
        name: {"mae": mae}
        for name, mae in (
            ("elevated", elevated),
            ("elevated_masked", 3.04),
            ("degraded_A", 113.5),
            ("degraded_B", 22.01),
            ("night_B", 23.03),
        )
    }
    cameras["families"] = {"mean": 1e-35, "max": 1e-33}
    negatives = {
        "people_free": {"all": {"mean_per_512": free, "max_per_512": 20.49}},
        "portraits": [{"name": "skimage:astronaut", "count": 0.9}, {"name": "grace_hopper", "count": grace}],
    }
    return {"cameras": cameras, "negatives": negatives}  # fmt: skip


def paired(change_a: float = -0.5, change_b: float = 0.0) -> dict:
    return {
        part: {"mae": mae + change, "baseline": {"mae": mae, "mae_delta": change, "mae_delta_ci95": [-1, 1]}}
        for part, mae, change in (("A", 78.82, change_a), ("B", 14.67, change_b))
    }


def verdict(candidate: dict, holdout: dict | None = None) -> tuple[bool, str]:
    return ship(holdout_figures(holdout or paired()) + check_figures(checks(), candidate))


def test_a_candidate_better_on_a_camera_set_and_not_worse_anywhere_ships():
    shipped, why = verdict(checks(elevated=3.62))
    assert shipped and why == "not worse anywhere and better on elevated MAE"


def test_the_default_itself_does_not_ship_it_wins_no_camera_set():
    assert verdict(checks()) == (False, "better on no camera-like set")


@pytest.mark.parametrize(
    ("holdout", "worse"),
    [(paired(change_a=0.3), "hold-out A MAE"), (paired(change_b=0.01), "hold-out B MAE")],
)
def test_a_paired_hold_out_loss_blocks_it_whatever_the_cameras_say(holdout, worse):
    assert verdict(checks(elevated=3.0), holdout) == (False, f"worse on {worse}")


def test_more_people_on_people_free_images_blocks_it():
    assert verdict(checks(elevated=3.62, free=0.51)) == (False, "worse on people-free per 512² mean")


def test_a_portrait_may_move_below_three_people_but_not_up_above_it():
    candidate = checks(elevated=3.62, grace=2.9)
    candidate["negatives"]["portraits"][0]["count"] = 2.5  # astronaut 0.9 -> 2.5: still a single person
    assert verdict(candidate)[0]
    too_many = copy.deepcopy(candidate)
    too_many["negatives"]["portraits"][1]["count"] = 3.6
    assert verdict(too_many) == (False, "worse on portrait grace_hopper")


def test_figures_are_compared_to_a_hundredth():
    candidate = checks(elevated=3.62)
    candidate["cameras"]["families"] = {"mean": 1e-19, "max": 0.004}
    assert verdict(candidate)[0]
    candidate["cameras"]["families"]["max"] = 0.02
    assert verdict(candidate) == (False, "worse on held-out families worst")
