"""`crowdstream check cameras`: how a model counts cameras it was never trained on, from hold-out images only.

The sets (training.camera_sets, `split="holdout"`), written once into a folder and reused, so every model
is scored on the same pictures:
- `elevated`: synthetic elevated views made of hold-out part B people on hold-out backgrounds, through the
  public camera recipe (640 px wide, JPEG 30, blur σ≈1);
- `elevated_masked`: the same views painted black outside a counting region, as operators hand in frames of
  a fixed camera (the issue's real camera came so), only the heads inside counted;
- `degraded`: every hold-out image of parts A and B through the same recipe;
- `night_B`: every hold-out part B image as an infrared camera records it at night (grey, dark, noisy,
  640 px, JPEG 30; camera_look.NIGHT_LOOK);
- `families`: people-free textures of whole families never trained against (training.texture_families).
A zoom sweep is `crowdstream eval --zoom`; the official test splits stay with independent reviewers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from crowdstream.engines.counting import count_frames
from crowdstream.engines.spec import Engine
from crowdstream.engines.uncertainty import frame_uncertainty
from crowdstream.training.annotations import list_dataset, load_any
from crowdstream.training.camera_sets import elevated_views, night_images, write_camera_sets, write_set
from crowdstream.training.evaluate import Scene, evaluate_variants, unchanged
from crowdstream.training.metrics import flag_rates

VERSION = 3
"""Bumped whenever the sets' recipe changes, so an old folder is rebuilt instead of compared (2: the masked
elevated views were added; 3: the night views; the other sets are drawn as in 1)."""
ANNOTATED_SETS = ("elevated", "elevated_masked", "degraded_A", "degraded_B", "night_B")
SIZES = {"elevated": 60, "degraded_per_part": None, "variants": 4}


def sets_current(folder: Path) -> bool:
    """Whether `folder` holds check sets of this VERSION."""
    stamp = folder / "camera-checks.json"
    return stamp.is_file() and json.loads(stamp.read_text()).get("version") == VERSION


def write_check_sets(folder: Path, data_root: Path) -> dict[str, int]:
    """Write the check sets under `folder` from `data_root`'s hold-out images; returns their sizes."""
    counts = write_camera_sets(
        folder, data_root, "holdout", SIZES["elevated"], SIZES["degraded_per_part"], SIZES["variants"]
    )
    masked = elevated_views(data_root, "holdout", SIZES["elevated"], masked=1.0)
    counts["elevated_masked"] = write_set(folder / "elevated_masked", masked, "elevated_masked")
    counts["night"] = write_set(folder / "night", night_images(data_root), "night")
    (folder / "camera-checks.json").write_text(json.dumps({"version": VERSION, "images": counts}))
    return counts


def family_counts(engine: Engine, folder: Path, tiles: str) -> dict:
    """Each people-free texture's count and self-check, the mean, the worst and each family's mean."""
    rows: dict[str, dict] = {}
    for path in list_dataset(folder):
        image = load_any(path).load_image()
        (counted,) = count_frames(engine, [image], tiles)
        rows[path.stem] = {"count": counted.count, **frame_uncertainty(engine, image, counted).as_dict()}
    families: dict[str, list[float]] = {}
    for name, row in rows.items():
        families.setdefault(name.split("-")[1], []).append(row["count"])
    values = [row["count"] for row in rows.values()]
    return {
        "images": len(values),
        "mean": float(np.mean(values)),
        "max": float(np.max(values)),
        "above_3": int(sum(v > 3 for v in values)),
        "per_family": {name: float(np.mean(v)) for name, v in sorted(families.items())},
        "uncertainty": flag_rates(values, [0.0] * len(values), [row["uncertain"] for row in rows.values()]),
        "per_image": rows,
    }


def scored(engine: Engine, samples: list, tiles: str, progress: bool) -> dict:
    """MAE, its interval, bias and every image's count of one set."""
    scenes = (Scene.from_sample(sample) for sample in samples)
    evaluation = evaluate_variants(
        engine, scenes, {"": unchanged}, tiles, progress, len(samples), judged=("",)
    )[""]
    summary = evaluation.summary()
    keys = ("images", "mae", "mae_ci95", "bias", "bias_pct", "truth_mean", "uncertainty")
    return {**{key: summary[key] for key in keys}, "per_image": evaluation.per_image()}


def camera_checks(engine: Engine, folder: Path, tiles: str, progress: bool = False) -> dict:
    """Score `engine` on every set under `folder` (see write_check_sets); degraded images per part."""
    report: dict = {"tiles": tiles}
    for name in ("elevated", "elevated_masked"):
        views = [load_any(path) for path in list_dataset(folder / name)]
        report[name] = scored(engine, views, tiles, progress)
    degraded = [load_any(path) for path in list_dataset(folder / "degraded")]
    for part in ("A", "B"):
        chosen = [s for s in degraded if s.image_path.name.startswith(f"degraded-{part}-")]
        report[f"degraded_{part}"] = scored(engine, chosen, tiles, progress)
    night = [load_any(path) for path in list_dataset(folder / "night")]
    report["night_B"] = scored(engine, night, tiles, progress)
    report["families"] = family_counts(engine, folder / "families", tiles)
    report["uncertainty_pooled"] = pooled_flags(report)
    return report


def pooled_flags(report: dict) -> dict:
    """The flag rates over every image of every set at once, as the issue's acceptance pools its images (a
    texture's truth is 0)."""
    rows = [
        (row["predicted"], row["truth"], row["uncertain"])
        for name in ANNOTATED_SETS
        for row in report[name]["per_image"]
    ]
    rows += [(row["count"], 0.0, row["uncertain"]) for row in report["families"]["per_image"].values()]
    predicted, truth, flagged = zip(*rows, strict=True) if rows else ((), (), ())
    return flag_rates(predicted, truth, flagged)


def format_camera_checks(report: dict) -> str:
    """The report as a short table for people."""
    lines = [f"{'set':<15} {'images':>6} {'MAE':>7} {'bias':>7} {'bias %':>7}"]
    for name in ANNOTATED_SETS:
        row = report[name]
        lines.append(
            f"{name:<15} {row['images']:>6} {row['mae']:>7.2f} {row['bias']:>7.2f} {row['bias_pct']:>6.1f}%"
        )
    families = report["families"]
    lines.append(
        f"{'families':<15} {families['images']:>6}  mean {families['mean']:.2f} per image, worst {families['max']:.1f}, "
        f"{families['above_3']} above 3"
    )
    lines.append("  " + ", ".join(f"{name} {mean:.1f}" for name, mean in families["per_family"].items()))
    rates = [(name, report[name]["uncertainty"]) for name in (*ANNOTATED_SETS, "families")]
    for name, u in [*rates, ("all sets", report["uncertainty_pooled"])]:
        lines.append(
            f"{name:<15} flagged uncertain: {u['flagged']}; large errors {u['large_errors']} "
            f"({_share(u['large_flagged'])} flagged), small errors {u['small_errors']} "
            f"({_share(u['small_flagged'])} flagged)"
        )
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
