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

from crowdstream.training.demo_clip import (
    FADE_SECONDS,
    FPS,
    IMAGES,
    SHOT_SECONDS,
    SIZE,
    render,
    schedule,
    shot_time,
    zooms_in,
)

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "stream" / "demo" / "crowd-demo.mp4"


def clip_frames(images: list[np.ndarray], fps: int, seconds: float, fade: float) -> Iterator[np.ndarray]:
    """Each image's Ken Burns shot, cross-faded into the next over `fade` seconds (see
    training.demo_clip.schedule, which `crowdstream check demo` reads to know what each frame shows)."""
    length = round(seconds * fps)
    for layers in schedule(len(images), fps, seconds, fade):
        views = [render(images[x.shot], shot_time(x.index, length), zooms_in(x.shot)) for x in layers]
        if len(views) == 1:
            yield views[0]
        else:
            yield cv2.addWeighted(views[0], layers[0].weight, views[1], layers[1].weight, 0)


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
    parser.add_argument("--fps", type=int, default=FPS)
    parser.add_argument("--seconds", type=float, default=SHOT_SECONDS, help="length of each image's shot")
    parser.add_argument("--fade", type=float, default=FADE_SECONDS, help="cross-fade between shots (s)")
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
