"""Carry the ShanghaiTech training splits to a borrowed GPU machine that cannot read ../shared.

The device tool sends at most 64 MiB with the working tree, and the two splits are ~100 MB of JPEG. `pack`
stores every image at 0.7 scale as WebP quality 75 (~45 MB) with its head points in the ORIGINAL pixel coordinates;
`unpack` (on the GPU machine, OpenCV only) scales each image back to its original size and writes an
NWPU-layout folder (images/ + jsons/), so training sees the same geometry and natural order — and so the
same hold-out split — as on the full-resolution data. The images are slightly softer than the originals:
the model card says so.

  python bench/gpu_pack.py pack ../shared/data/shanghaitech .gpudata
  python3 bench/gpu_pack.py unpack .gpudata /tmp/data   # then data_roots: {A: /tmp/data/part_A, ...}
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2

PARTS = ("part_A", "part_B")


def pack(source: Path, target: Path, scale: float, quality: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from crowdstream.training.annotations import iter_dataset

    for part in PARTS:
        out = target / part
        out.mkdir(parents=True, exist_ok=True)
        for sample in iter_dataset(source / part / "train_data"):
            image = sample.load_image()
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            name = sample.image_path.stem
            cv2.imwrite(str(out / f"{name}.webp"), small, [cv2.IMWRITE_WEBP_QUALITY, quality])
            record = {
                "img_id": f"{name}.jpg",
                "width": sample.width,
                "height": sample.height,
                "human_num": sample.count,
                "points": sample.points.round(1).tolist(),
            }
            (out / f"{name}.json").write_text(json.dumps(record))


def _unpack_one(args: tuple[Path, Path]) -> None:
    record_path, out = args
    record = json.loads(record_path.read_text())
    small = cv2.imread(str(record_path.with_suffix(".webp")), cv2.IMREAD_COLOR)
    image = cv2.resize(small, (record["width"], record["height"]), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(out / "images" / record["img_id"]), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    (out / "jsons" / record_path.name).write_text(json.dumps(record))


def unpack(source: Path, target: Path) -> None:
    jobs = []
    for part in PARTS:
        out = target / part
        (out / "images").mkdir(parents=True, exist_ok=True)
        (out / "jsons").mkdir(parents=True, exist_ok=True)
        jobs += [(path, out) for path in sorted((source / part).glob("*.json"))]
    with ProcessPoolExecutor() as pool:
        list(pool.map(_unpack_one, jobs, chunksize=8))
    print(f"unpacked {len(jobs)} images into {target}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("--scale", type=float, default=0.7)
    p.add_argument("--quality", type=int, default=75)
    u = sub.add_parser("unpack")
    u.add_argument("source", type=Path)
    u.add_argument("target", type=Path)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.source, args.target, args.scale, args.quality)
    else:
        unpack(args.source, args.target)


if __name__ == "__main__":
    main()
