"""Make the bundled demo clip: slow pans and zooms (Ken Burns) across real ShanghaiTech part_B crowd photos.

`crowdstream serve` with no camera plays this clip, so it must look like a fixed street camera watching
crowds of different sizes, be small enough to commit (a few MB), and decode with the OpenCV and PyAV pip
wheels (H.264 in MP4). The output is deterministic: fixed images, fixed motion, single-threaded x264.

    python bench/make_demo_clip.py /work/shared/data/shanghaitech/part_B/train_data/images
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

# Part_B training images from sparse (~40 people) to dense (~300): the count visibly changes in the demo.
IMAGES = (
    "IMG_6.jpg",
    "IMG_75.jpg",
    "IMG_109.jpg",
    "IMG_169.jpg",
    "IMG_21.jpg",
    "IMG_18.jpg",
    "IMG_343.jpg",
    "IMG_96.jpg",
)
SIZE = (1280, 720)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "stream" / "demo" / "crowd-demo.mp4"


def ken_burns(image: np.ndarray, frames: int, zoom_in: bool) -> Iterator[np.ndarray]:
    """`frames` views of `image` at SIZE: a 16:9 window that zooms 1.0→0.8 of the width (or back)
    while drifting across, resampled with sub-pixel accuracy so the motion is smooth."""
    height, width = image.shape[:2]
    out_w, out_h = SIZE
    for i in range(frames):
        t = i / max(frames - 1, 1)
        scale = 1.0 - 0.2 * (t if zoom_in else 1.0 - t)
        crop_w = min(width, height * out_w / out_h) * scale
        crop_h = crop_w * out_h / out_w
        x0 = (width - crop_w) * (0.25 + 0.5 * t)
        y0 = (height - crop_h) * (0.6 - 0.2 * t)
        zoom = out_w / crop_w
        matrix = np.float32([[zoom, 0, -x0 * zoom], [0, zoom, -y0 * zoom]])
        yield cv2.warpAffine(image, matrix, SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def clip_frames(images: list[np.ndarray], fps: int, seconds: float, fade: float) -> Iterator[np.ndarray]:
    """Each image's Ken Burns shot, cross-faded into the next over `fade` seconds."""
    shot, overlap = round(seconds * fps), round(fade * fps)
    shots = [list(ken_burns(image, shot, zoom_in=i % 2 == 0)) for i, image in enumerate(images)]
    for i, frames in enumerate(shots):
        start = overlap if i else 0
        end = shot - overlap if i < len(shots) - 1 else shot
        yield from frames[start:end]
        if i < len(shots) - 1:
            for k in range(overlap):
                alpha = (k + 1) / (overlap + 1)
                yield cv2.addWeighted(frames[end + k], 1 - alpha, shots[i + 1][k], alpha, 0)


def write_clip(frames: Iterator[np.ndarray], out: Path, fps: int, crf: int) -> int:
    """Encode BGR frames as H.264 (yuv420p, CRF) in MP4; returns the number of frames written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with av.open(str(out), mode="w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "slow"})
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 2 * fps  # a key frame every 2 s keeps looping and seeking cheap
        stream.codec_context.thread_count = 1  # single-threaded x264 gives the same bytes every run
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, help="ShanghaiTech part_B .../train_data/images folder")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each image's shot")
    parser.add_argument("--fade", type=float, default=0.5, help="cross-fade between shots (s)")
    parser.add_argument("--crf", type=int, default=27, help="x264 quality: higher is smaller")
    args = parser.parse_args()
    paths = [args.images / name for name in IMAGES]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        parser.error(f"missing ShanghaiTech images: {', '.join(missing)}")
    images = [cv2.imread(str(path), cv2.IMREAD_COLOR) for path in paths]
    count = write_clip(clip_frames(images, args.fps, args.seconds, args.fade), args.out, args.fps, args.crf)
    print(f"{args.out}: {count} frames, {count / args.fps:.1f} s, {args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
