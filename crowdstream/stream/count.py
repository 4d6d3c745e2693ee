"""`crowdstream count`: one image or video file in, counts out, optionally the heatmap overlay written.

It decodes with the same readers the service uses (so the same files fail the same way, with the same
memory bound on huge images) and counts with the same batched path; it is the service without the loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from crowdstream.engines.counting import DENSITY_SCALE, count_frames
from crowdstream.engines.engine import load_engine
from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.frames import IMAGE_SUFFIXES
from crowdstream.engines.preprocess import parse_tiles
from crowdstream.engines.spec import Engine
from crowdstream.engines.uncertainty import Uncertainty, frame_uncertainty
from crowdstream.stream.overlay import render_overlay
from crowdstream.stream.readings import frame_reading
from crowdstream.stream.self_checks import uncertain_share
from crowdstream.stream.sources.capture import AvReader
from crowdstream.stream.sources.folder import decode_image

MAX_PIXELS = 4096 * 4096
"""Larger images are decoded reduced and downscaled to this many pixels (a memory bound)."""
VIDEO_BATCH = 8
IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_OUTPUTS = {".mp4": "mp4v", ".avi": "MJPG"}


class CountError(CrowdstreamError):
    """A file that cannot be counted or an overlay that cannot be written."""


@dataclass(frozen=True)
class FileCount:
    """One image's or video frame's count from `crowdstream count`, with its overlay when one is written."""

    time: float | None  # media time of a video frame, None for an image
    count: float
    overlay: np.ndarray | None
    uncertainty: Uncertainty

    def as_dict(self) -> dict:
        """The JSON fields of one count: the count and how far it can be trusted."""
        timed = {} if self.time is None else {"time": round(self.time, 3)}
        return {**timed, "count": round(self.count, 2), **self.uncertainty.as_dict()}


def _doubt(uncertainty: Uncertainty) -> str:
    """What a person reads after an uncertain count."""
    return f"  (uncertain: {uncertainty.reason})" if uncertainty.uncertain else ""


def _overlay(frame: np.ndarray, density: np.ndarray, count: float) -> np.ndarray:
    height, width = frame.shape[:2]
    reading = frame_reading("count", 0.0, (width, height), count, density, (), None, alpha=1.0)
    return render_overlay(frame, density, reading)


def count_image(engine: Engine, path: Path, tiles: str, render: bool) -> FileCount:
    try:
        frame = decode_image(path.read_bytes(), MAX_PIXELS)
    except OSError as exc:
        raise CountError(f"{path}: cannot read ({exc.strerror})") from None
    except Exception as exc:  # SourceFault: what is wrong with the bytes
        raise CountError(f"{path}: {exc}") from None
    result = count_frames(engine, [frame], tiles, DENSITY_SCALE)[0]
    overlay = _overlay(frame, result.density, result.count) if render else None
    return FileCount(None, result.count, overlay, frame_uncertainty(engine, frame, result))


def sampled_frames(path: Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """(media time, frame) every 1/fps seconds of the video, decoded without pacing."""
    reader = AvReader(str(path), finite=True, max_pixels=MAX_PIXELS)
    next_time = 0.0
    try:
        for index, (pixels, media_time) in enumerate(reader.frames()):
            at = media_time if media_time is not None else float(index)
            if at + 1e-6 >= next_time:
                next_time = at + 1.0 / fps
                yield at, pixels()  # only sampled frames are converted to BGR
    except Exception as exc:  # FFmpeg and SourceFault errors: a file that is not a readable video
        raise CountError(f"{path}: not a readable image or video ({exc})") from None


def count_video(engine: Engine, path: Path, fps: float, tiles: str, render: bool) -> Iterator[FileCount]:
    batch: list[tuple[float, np.ndarray]] = []
    for item in sampled_frames(path, fps):
        batch.append(item)
        if len(batch) == VIDEO_BATCH:
            yield from _count_batch(engine, batch, tiles, render)
            batch = []
    yield from _count_batch(engine, batch, tiles, render)


def _count_batch(
    engine: Engine, batch: list[tuple[float, np.ndarray]], tiles: str, render: bool
) -> list[FileCount]:
    results = count_frames(engine, [frame for _, frame in batch], tiles, DENSITY_SCALE)
    return [
        FileCount(
            at,
            r.count,
            _overlay(frame, r.density, r.count) if render else None,
            frame_uncertainty(engine, frame, r),
        )
        for (at, frame), r in zip(batch, results, strict=True)
    ]


class VideoOut:
    """Overlay frames to a video file, opened on the first frame (its size is known only then)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_OUTPUTS[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (frame.shape[1], frame.shape[0]))
            if not self.writer.isOpened():
                raise CountError(f"{self.path}: cannot write a video here")
        self.writer.write(frame)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def _is_video(path: Path) -> bool:
    """Whether `path` is a video (False: an image, by its suffix). Anything else is a one-line error,
    found by opening the container only, before the model is loaded."""
    if path.is_dir():
        raise CountError(
            f"{path}: is a folder; count takes one image or video file (crowdstream eval scores a data set)"
        )
    if not path.is_file():
        raise CountError(f"{path}: no such file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return False
    try:
        with av.open(str(path)) as container:
            if container.streams.video:
                return True
            reason = "it holds no video stream"
    except (av.error.FFmpegError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
    images = ", ".join(sorted(IMAGE_SUFFIXES))
    raise CountError(f"{path}: not a readable image or video (images are {images}; as a video: {reason})")


def _check_output(output: Path | None, video: bool) -> None:
    if output is None:
        return
    allowed = tuple(VIDEO_OUTPUTS) if video else IMAGE_OUTPUTS
    if output.suffix.lower() not in allowed:
        kind = "a video" if video else "an image"
        raise CountError(f"{output}: the overlay of {kind} is written as {', '.join(allowed)}")
    if not output.parent.is_dir():
        raise CountError(f"{output}: folder {output.parent} does not exist")


def _check_options(fps: float, tiles: str) -> None:
    if fps <= 0:
        raise CountError(f"--fps must be greater than 0, got {fps}")
    try:
        parse_tiles(tiles)
    except ValueError as exc:
        raise CountError(f"--tiles: {exc}") from None


def run_count(
    path: Path, output: Path | None, *, as_json: bool, fps: float, tiles: str, model: str, backend: str
) -> int:
    """Count an image or a video and print the result; returns the exit code. Every argument is
    checked before the model loads."""
    _check_options(fps, tiles)
    video = _is_video(path)
    _check_output(output, video)
    engine = load_engine(model, backend)
    if not video:
        counted = count_image(engine, path, tiles, render=output is not None)
        if output is not None and not cv2.imwrite(str(output), counted.overlay):
            raise CountError(f"{output}: cannot write the overlay")
        print(
            json.dumps({"path": str(path), **counted.as_dict()})
            if as_json
            else f"{path}: {counted.count:.1f} people{_doubt(counted.uncertainty)}"
        )
        return 0
    return _report_video(engine, path, output, as_json, fps, tiles)


def _report_video(
    engine: Engine, path: Path, output: Path | None, as_json: bool, fps: float, tiles: str
) -> int:
    writer = VideoOut(output, fps) if output is not None else None
    frames = []
    try:
        for counted in count_video(engine, path, fps, tiles, render=writer is not None):
            frames.append(counted.as_dict())
            if writer is not None:
                writer.write(counted.overlay)
            if not as_json:
                print(f"{counted.time:8.2f} s  {counted.count:8.1f} people{_doubt(counted.uncertainty)}")
    finally:
        if writer is not None:
            writer.close()
    if not frames:
        raise CountError(f"{path}: no frames could be decoded")
    counts = [f["count"] for f in frames]
    uncertain_frames = sum(f["uncertain"] for f in frames)
    summary = {
        "path": str(path),
        "frames": len(frames),
        "uncertain_frames": uncertain_frames,
        "uncertain": uncertain_share(uncertain_frames / len(frames)),  # judged as the service judges a camera
        "mean": round(float(np.mean(counts)), 2),
        "max": round(max(counts), 2),
    }
    verdict = ": the camera's count is uncertain, teach it" if summary["uncertain"] else ""
    print(
        json.dumps({**summary, "counts": frames})
        if as_json
        else f"{path}: {summary['frames']} frames, mean {summary['mean']:.1f}, max {summary['max']:.1f} people, "
        f"{uncertain_frames} of them uncertain{verdict}"
    )
    return 0
