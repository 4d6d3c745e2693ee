"""`crowdstream check cameras`: how a model counts cameras it was never trained on, from hold-out images only.

Three sets (training.camera_sets, `split="holdout"`), written once into a folder and reused, so every model
is scored on the same pictures:
- `elevated`: synthetic elevated views made of hold-out part B people on hold-out backgrounds, through the
  public camera recipe (640 px wide, JPEG 30, blur σ≈1);
- `degraded`: every hold-out image of parts A and B through the same recipe;
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
from crowdstream.training.camera_sets import write_camera_sets
from crowdstream.training.evaluate import Scene, evaluate_variants, unchanged
from crowdstream.training.metrics import flag_rates

VERSION = 1
"""Bumped whenever the sets' recipe changes, so an old folder is rebuilt instead of compared."""
ANNOTATED_SETS = ("elevated", "degraded_A", "degraded_B")
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
    elevated = [load_any(path) for path in list_dataset(folder / "elevated")]
    degraded = [load_any(path) for path in list_dataset(folder / "degraded")]
    report: dict = {"tiles": tiles, "elevated": scored(engine, elevated, tiles, progress)}
    for part in ("A", "B"):
        chosen = [s for s in degraded if s.image_path.name.startswith(f"degraded-{part}-")]
        report[f"degraded_{part}"] = scored(engine, chosen, tiles, progress)
    report["families"] = family_counts(engine, folder / "families", tiles)
    return report


def format_camera_checks(report: dict) -> str:
    """The report as a short table for people."""
    lines = [f"{'set':<10} {'images':>6} {'MAE':>7} {'bias':>7} {'bias %':>7}"]
    for name in ANNOTATED_SETS:
        row = report[name]
        lines.append(
            f"{name:<10} {row['images']:>6} {row['mae']:>7.2f} {row['bias']:>7.2f} {row['bias_pct']:>6.1f}%"
        )
    families = report["families"]
    lines.append(
        f"families   {families['images']:>6}  mean {families['mean']:.2f} per image, worst {families['max']:.1f}, "
        f"{families['above_3']} above 3"
    )
    lines.append("  " + ", ".join(f"{name} {mean:.1f}" for name, mean in families["per_family"].items()))
    for name in (*ANNOTATED_SETS, "families"):
        u = report[name]["uncertainty"]
        lines.append(
            f"{name:<10} flagged uncertain: {u['flagged']}; large errors {u['large_errors']} "
            f"({_share(u['large_flagged'])} flagged), small errors {u['small_errors']} "
            f"({_share(u['small_flagged'])} flagged)"
        )
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
