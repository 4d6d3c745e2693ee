"""`check cameras` pools its flag rates over every image of every set, as the issue's acceptance does."""

from __future__ import annotations

from crowdstream.training.camera_checks import ANNOTATED_SETS, format_camera_checks, pooled_flags


def annotated(*rows: tuple[float, float, bool]) -> dict:
    per_image = [{"predicted": p, "truth": t, "uncertain": u} for p, t, u in rows]
    return {"images": len(rows), "mae": 0.0, "bias": 0.0, "bias_pct": 0.0, "per_image": per_image}


def test_the_pooled_rates_count_every_image_of_every_set_once() -> None:
    report = {name: annotated() for name in ANNOTATED_SETS}
    report["elevated"] = annotated(
        (20.0, 40.0, True), (40.0, 41.0, True)
    )  # large and flagged; small, flagged
    report["night_B"] = annotated((100.0, 60.0, False), (60.0, 60.5, False))  # large, missed; small, quiet
    report["families"] = {
        "per_image": {
            "cobwebs-0": {"count": 9.0, "uncertain": True},
            "mud-0": {"count": 0.2, "uncertain": False},
        }
    }
    pooled = pooled_flags(report)
    # large: elevated 20/40, night 100/60, the 9-person cobweb; small: elevated 40/41, night 60/60.5, the mud
    assert pooled == {
        "flagged": 3,
        "large_errors": 3,
        "large_flagged": 2 / 3,
        "small_errors": 3,
        "small_flagged": 1 / 3,
    }


def test_the_table_ends_with_the_pooled_line() -> None:
    nothing = {
        "flagged": 0,
        "large_errors": 0,
        "large_flagged": None,
        "small_errors": 0,
        "small_flagged": None,
    }
    report = {name: {**annotated(), "uncertainty": nothing} for name in ANNOTATED_SETS}
    report["families"] = {
        "images": 0,
        "mean": 0.0,
        "max": 0.0,
        "above_3": 0,
        "per_family": {},
        "uncertainty": nothing,
    }
    report["uncertainty_pooled"] = {**nothing, "flagged": 3, "large_errors": 3, "large_flagged": 2 / 3}
    assert format_camera_checks(report).splitlines()[-1] == (
        "all sets        flagged uncertain: 3; large errors 3 (67% flagged), small errors 0 (n/a flagged)"
    )
