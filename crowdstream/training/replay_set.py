"""The replay set that ships inside the package, so a fine-tune on any install guards the model against
forgetting and judges it on something general, with no ShanghaiTech folder anywhere.

Two folders of JPEG crops with their head points, in the snapshot format (`<part>-<image>.jpg` +
`.json`), under `crowdstream/training/replay/`:

- `train/`: crops of ShanghaiTech training-split images (never the every-5th hold-out); a fine-tune
  replays them, anchored to the base model's own answers (training.finetune);
- `check/`: crops of every-5th hold-out images only; without a data root, the fine-tune's "standard
  hold-out" is these (their MAE before and after, per part).

Each crop is CROP pixels (the size of one stream tile at the `auto` tiling) around a randomly chosen head,
at the source's resolution, written at JPEG quality QUALITY: a few MB in all. Regenerate with

    python -m crowdstream.training.replay_set --data-root DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from crowdstream.engines.frames import holdout_split, shanghaitech_part, spread
from crowdstream.training.annotations import Sample, list_dataset, load_any
from crowdstream.training.datasets import LoadedImage

REPLAY_DIR = Path(__file__).resolve().parent / "replay"
PARTS = ("A", "B")
"""The ShanghaiTech parts, as `LoadedImage.part` names them."""
Kind = Literal["train", "check"]
PER_PART: dict[str, int] = {"train": 16, "check": 10}
"""Crops per ShanghaiTech part in each folder."""
CROP = (576, 432)
QUALITY = 80
SEED = 20261206


def crop_around(sample: Sample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(CROP-sized crop around a random head, or the whole image where it is smaller; its head points)."""
    image = sample.load_image()
    height, width = image.shape[:2]
    cw, ch = min(CROP[0], width), min(CROP[1], height)
    x, y = sample.points[rng.integers(len(sample.points))] if len(sample.points) else (width / 2, height / 2)
    x0 = int(np.clip(x - cw / 2, 0, width - cw))
    y0 = int(np.clip(y - ch / 2, 0, height - ch))
    points = sample.points
    inside = (points[:, 0] >= x0) & (points[:, 0] < x0 + cw) & (points[:, 1] >= y0) & (points[:, 1] < y0 + ch)
    return image[y0 : y0 + ch, x0 : x0 + cw], points[inside] - [x0, y0]


def write_replay_set(data_root: Path, out: Path = REPLAY_DIR) -> int:
    """Rewrite `out`/train and `out`/check from the data root's two ShanghaiTech parts; returns the crops."""
    written = 0
    for kind, per_part in PER_PART.items():
        folder = out / kind
        shutil.rmtree(folder, ignore_errors=True)
        for part in ("A", "B"):
            train, holdout = holdout_split(list_dataset(shanghaitech_part(part, data_root)))
            rng = np.random.default_rng((SEED, ord(part), len(kind)))
            for path in spread(train if kind == "train" else holdout, per_part):
                sample = load_any(path)
                crop, points = crop_around(sample, rng)
                stem = f"{part}-{sample.image_path.stem}"
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / f"{stem}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
                record = {
                    "points": np.round(points, 2).tolist(),
                    "source": f"ShanghaiTech part {part} {path.name}",
                }
                (folder / f"{stem}.json").write_text(json.dumps(record))
                written += 1
    return written


def shipped_samples(kind: Kind, folder: Path = REPLAY_DIR) -> dict[str, list[Sample]]:
    """The shipped crops of one folder by ShanghaiTech part ({} when the package has none)."""
    parts: dict[str, list[Sample]] = {}
    for path in sorted((folder / kind).glob("*.json")):
        parts.setdefault(path.stem.split("-", 1)[0], []).append(load_any(path, strict=True))
    return parts


def shipped_replay_images(
    per_part: int | None = None, folder: Path = REPLAY_DIR, parts: tuple[str, ...] = PARTS
) -> list[LoadedImage]:
    """`per_part` of the `train` crops of each part in `parts` (all: None) in memory, each tagged with its
    part (replay draws the parts equally)."""
    return [
        LoadedImage(sample, sample.load_image(), None, part)
        for part, samples in shipped_samples("train", folder).items()
        if part in parts
        for sample in (samples if per_part is None else spread(samples, per_part))
    ]


def main() -> int:
    from crowdstream.engines.data_root import DATA_ROOT_HELP, resolve_data_root

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", help=DATA_ROOT_HELP)
    parser.add_argument("--out", type=Path, default=REPLAY_DIR)
    args = parser.parse_args()
    print(f"{write_replay_set(resolve_data_root(args.data_root), args.out)} crops written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
