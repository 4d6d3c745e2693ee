"""Whether a candidate model may replace the shipped default (issue 25, "ship only what is better"): paired on
the same hold-out images it is not worse on either ShanghaiTech part, and on the checks it was never trained
on (`crowdstream check cameras`, `crowdstream check negatives`) it is better on the camera-like sets and not
worse on the people-free ones.

Pure: it reads the JSON the commands print (`eval --holdout --baseline DEFAULT --json`, `check cameras --json`,
`check negatives --json`) and returns one row per figure with its verdict; `bench/ship_check.py` runs the
commands. One rule for every candidate, so a "not shipped" in the model card is a command's answer, not a
judgement made while looking at the numbers.

>>> row = Figure("elevated MAE", 4.27, 3.62, "lower")
>>> row.verdict
'better'
>>> Figure("people-free per 512²", 0.41, 0.51, "not higher").verdict
'worse'
>>> Figure("held-out families mean", 1e-35, 1e-19, "not higher").verdict
'same'
>>> Figure("portrait", 0.9, 1.3, "not higher", allowed=3.0).verdict  # still under 3 people
'same'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CAMERA_SETS = ("elevated", "elevated_masked", "degraded_A", "degraded_B", "night_B")
"""`check cameras` sets built like the cameras operators have; the candidate must win on them."""
PORTRAIT_LIMIT = 3.0
"""A single portrait must read below this many people (the issue's acceptance), or no worse than the default."""

DECIMALS = 2
"""Figures are compared as printed, to a hundredth of a person: 1e-19 people on a texture is not worse than
1e-35."""

Want = Literal["lower", "not higher", "paired not worse"]


@dataclass(frozen=True)
class Figure:
    """One figure of the default and the candidate, and what the candidate must do on it.

    `want`: "lower" (a camera-like MAE: better is required somewhere, see `ship`), "not higher" (people-free
    reads, portraits), "paired not worse" (hold-out: the mean paired MAE change, `change`, at most 0)."""

    name: str
    default: float
    candidate: float
    want: Want
    change: float | None = None
    change_ci95: tuple[float, float] | None = None
    allowed: float = 0.0
    """A candidate reading below this is never worse (a portrait under the acceptance's 3 people)."""

    @property
    def verdict(self) -> Literal["better", "same", "worse"]:
        delta = round(self.candidate - self.default if self.change is None else self.change, DECIMALS)
        if delta > 0 and self.candidate >= self.allowed:
            return "worse"
        return "better" if delta < 0 else "same"


def holdout_figures(paired: dict[str, dict]) -> list[Figure]:
    """The hold-out rows from `eval PART --holdout --baseline DEFAULT --json` of each part (key: "A", "B")."""
    rows = []
    for part, result in sorted(paired.items()):
        baseline = result["baseline"]
        rows.append(
            Figure(
                f"hold-out {part} MAE",
                baseline["mae"],
                result["mae"],
                "paired not worse",
                baseline["mae_delta"],
                tuple(baseline["mae_delta_ci95"]),
            )
        )
    return rows


def check_figures(default: dict, candidate: dict) -> list[Figure]:
    """Rows from `check cameras --json` and `check negatives --json` of each model (dicts with keys
    "cameras" and "negatives")."""
    rows = [
        Figure(f"{name} MAE", default["cameras"][name]["mae"], candidate["cameras"][name]["mae"], "lower")
        for name in CAMERA_SETS
    ]
    families = (default["cameras"]["families"], candidate["cameras"]["families"])
    rows.append(Figure("held-out families mean", families[0]["mean"], families[1]["mean"], "not higher"))
    rows.append(Figure("held-out families worst", families[0]["max"], families[1]["max"], "not higher"))
    free = (default["negatives"]["people_free"]["all"], candidate["negatives"]["people_free"]["all"])
    rows.append(
        Figure("people-free per 512² mean", free[0]["mean_per_512"], free[1]["mean_per_512"], "not higher")
    )
    rows.append(
        Figure("people-free per 512² worst", free[0]["max_per_512"], free[1]["max_per_512"], "not higher")
    )
    for before, after in zip(
        default["negatives"]["portraits"], candidate["negatives"]["portraits"], strict=True
    ):
        name = f"portrait {after['name']}"
        rows.append(Figure(name, before["count"], after["count"], "not higher", allowed=PORTRAIT_LIMIT))
    return rows


def ship(rows: list[Figure]) -> tuple[bool, str]:
    """(ship it, why): nothing worse, and at least one camera-like set better."""
    worse = [row.name for row in rows if row.verdict == "worse"]
    if worse:
        return False, "worse on " + ", ".join(worse)
    better = [row.name for row in rows if row.want == "lower" and row.verdict == "better"]
    if not better:
        return False, "better on no camera-like set"
    return True, "not worse anywhere and better on " + ", ".join(better)
