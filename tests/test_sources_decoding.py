"""Decoding only what is needed (issue 14): while nobody watches a camera that counts a few frames a
second, its reader skips H.264 non-reference frames and converts to BGR only the frames taken; a viewer
gets every frame. Real decoding throughout: the bundled 720p demo clip (x264 with B-frames), a marked
clip encoded here with B-frames, a real RTSP server; expected pixels come from PyAV directly."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from crowdstream.stream.cameras import Cameras
from crowdstream.stream.config import ServiceConfig
from crowdstream.stream.hub import Hub
from crowdstream.stream.metrics import StreamMetrics
from crowdstream.stream.sources import DEMO_CLIP, DecodeConfig, open_source
from crowdstream.stream.sources.capture import AvReader
from crowdstream.stream.sources.decoding import skip_frames
from crowdstream.stream.worker import Worker, load_worker_engine
from tests.conftest import frame_index, marked_frame, wait_until

FRAMES = 48
WIDTH = 10 * FRAMES  # room for every frame's marker bar


def digest(image: np.ndarray) -> str:
    return hashlib.sha1(image.tobytes()).hexdigest()


def reference_pictures(path: Path) -> dict[float, str]:
    """Every frame of a file by its time, decoded and converted by PyAV itself, all frames decoded."""
    with av.open(str(path)) as container:
        return {frame.time: digest(frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)}


def reference_frames(path: Path) -> set[int]:
    """Indices of the frames that are not B-frames, by PyAV's picture types (the clip's B-frames are
    all non-reference: b-pyramid is off)."""
    with av.open(str(path)) as container:
        types = [frame.pict_type for frame in container.decode(video=0)]
    return {index for index, kind in enumerate(types) if kind != PictureType.B}


def read(reader: AvReader, wanted_fps) -> list[tuple[float, np.ndarray]]:
    """(media time, BGR) of every picture the reader yields; `wanted_fps(i)` is set before the i-th."""
    pictures = []
    frames = reader.frames()
    for index in itertools.count():
        reader.wanted_fps = wanted_fps(index)
        try:
            pixels, media_time = next(frames)
        except StopIteration:
            return pictures
        pictures.append((media_time, pixels()))


@pytest.fixture(scope="module")
def b_frame_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 marked frames at 12 fps, H.264 with three B-frames between references (b-pyramid off: the
    B-frames are all non-reference, as in most encoders' defaults)."""
    path = tmp_path_factory.mktemp("bframes") / "marked.mp4"
    with av.open(str(path), mode="w") as container:
        options = {"crf": "18", "preset": "veryfast", "x264-params": "bframes=3:b-pyramid=none:b-adapt=0"}
        stream = container.add_stream("libx264", rate=12, options=options)
        stream.width, stream.height, stream.pix_fmt = WIDTH, 240, "yuv420p"
        for index in range(FRAMES):
            container.mux(
                stream.encode(av.VideoFrame.from_ndarray(marked_frame(index, WIDTH), format="bgr24"))
            )
        container.mux(stream.encode(None))
    return path


def test_reference_frames_are_enough_only_for_a_few_frames_a_second() -> None:
    assert skip_frames(2.0, 12.0) == "NONREF"
    assert skip_frames(None, 12.0) == "DEFAULT"  # somebody watches: every frame
    assert skip_frames(6.0, 12.0) == "DEFAULT"  # half the frames wanted: references may be fewer
    assert skip_frames(2.0, 12.0, skip_unused=False) == "DEFAULT"


def test_sparse_reading_of_the_demo_clip_gives_the_pixels_of_a_full_decode() -> None:
    expected = reference_pictures(DEMO_CLIP)
    pictures = read(AvReader(str(DEMO_CLIP), finite=True), lambda _: 2.0)
    assert (
        0.3 * len(expected) < len(pictures) < 0.7 * len(expected)
    )  # 191 of 342: the B-frames nobody refers to
    assert all(digest(image) == expected[time] for time, image in pictures)
    gaps = np.diff([time for time, _ in pictures])
    assert gaps.max() <= 4 / 12 + 1e-6  # a reference at least every 4th frame: far more than 2 fps


def test_a_viewer_arriving_and_leaving_mid_stream_changes_no_pixel(b_frame_clip: Path) -> None:
    expected = reference_pictures(b_frame_clip)
    watched = lambda index: None if (index // 10) % 2 else 2.0  # noqa: E731 - unwatched, watched, ...
    pictures = read(AvReader(str(b_frame_clip), finite=True), watched)
    assert all(digest(image) == expected[time] for time, image in pictures)
    indices = [frame_index(image) for _, image in pictures]
    assert indices == sorted(indices) and FRAMES / 4 < len(indices) < FRAMES
    sparse = [
        frame_index(image) for _, image in read(AvReader(str(b_frame_clip), finite=True), lambda _: 2.0)
    ]
    assert len(sparse) < len(indices)  # the watched stretches brought their B-frames back
    assert sparse == sorted(reference_frames(b_frame_clip))  # I- and P-frames only


def test_a_paced_file_keeps_the_slots_of_the_frames_it_skipped(b_frame_clip: Path) -> None:
    """At an `fps` override a file's frame i is shown at i / fps, also when the frames between were
    never decoded: skipping must not speed the file up."""
    pictures = read(AvReader(str(b_frame_clip), finite=True, fps=24.0), lambda _: 2.0)
    indices = sorted(reference_frames(b_frame_clip))
    assert [frame_index(image) for _, image in pictures] == indices
    assert [time for time, _ in pictures] == pytest.approx([index / 24 for index in indices])


def play(clip: Path, watched: bool, decode: DecodeConfig | None = None) -> tuple[int, list[int]]:
    """Play `clip` once through a source counted at 2 fps: (frames it published, the frames a viewer
    saw, in order: none when unwatched)."""
    source = open_source("cam", str(clip), loop=False, fps=120, counted_fps=2.0, decode=decode)
    seen: list[int] = []
    if watched:
        source.on_frame = lambda: seen.append(frame_index(source.latest().image))
    source.start()
    try:
        wait_until(lambda: source.status == "ended", 20, f"the clip played, watched={watched}")
    finally:
        source.stop()
    return source.latest().seq, seen


def test_a_watched_camera_gets_every_frame(b_frame_clip: Path) -> None:
    assert play(b_frame_clip, watched=True) == (FRAMES, list(range(FRAMES)))


def test_an_unwatched_camera_decodes_only_the_reference_frames(b_frame_clip: Path) -> None:
    """Frame numbers count the pictures a source published: the I- and P-frames for a camera counted at
    2 fps that nobody watches; all of them with skip_unused off."""
    references = len(reference_frames(b_frame_clip))
    assert references < FRAMES / 2  # three B-frames between references, fewer at the clip's end
    assert play(b_frame_clip, watched=False) == (references, [])
    assert play(b_frame_clip, watched=False, decode=DecodeConfig(skip_unused=False)) == (FRAMES, [])


def test_an_unwatched_camera_converts_only_the_frames_taken() -> None:
    """A consumer taking two frames a second from the demo clip (12 fps): conversions are counted, not timed."""
    source = open_source("cam", "demo", counted_fps=2.0)
    source.start()
    taken = []
    try:
        while len(taken) < 5:
            frame = source.wait(taken[-1].seq if taken else 0, timeout=10)
            assert frame is not None, source.last_error
            assert frame.image.shape == (720, 1280, 3) and frame.image is frame.image
            taken.append(frame)
            time.sleep(0.5)
    finally:
        source.stop()
    assert source.reader.converted == len(taken)
    assert taken[-1].seq - taken[0].seq > 2 * (
        len(taken) - 1
    )  # frames were published in between, unconverted


def test_rtsp_camera_unwatched_still_streams_and_converts_only_what_is_taken(rtsp_server) -> None:  # noqa: F811
    """A live stream without B-frames (x264 zerolatency): nothing to skip, every frame still arrives,
    and only taken frames are converted."""
    source = open_source("door", rtsp_server.url, open_timeout=5.0, read_timeout=5.0, counted_fps=2.0)
    source.start()
    try:
        first = source.wait(0, timeout=20)
        assert first is not None, f"no frame from {rtsp_server.url}: {source.last_error}"
        assert first.image.shape == (240, 320, 3)
        wait_until(lambda: source.latest().seq >= first.seq + 15, 20, "a second of live frames")
        assert source.latest().image.shape == (240, 320, 3)
    finally:
        source.stop()
    assert source.reader.converted == 2
    assert source.reader.skipped == 0


async def test_the_worker_converts_exactly_the_frames_it_counts() -> None:
    """Two demo-clip cameras counted at 2 fps through the service's own wiring (Cameras): every BGR
    conversion is one counted frame; the 12 fps the reader publishes in between are never converted."""
    config = ServiceConfig.model_validate(
        {"cameras": [{"id": "a", "url": "demo", "max_fps": 2}, {"id": "b", "url": "demo", "max_fps": 2}]}
    )
    metrics = StreamMetrics()
    worker = Worker(load_worker_engine(config.engine), Hub(), metrics)
    cameras = Cameras(worker, config)
    for camera in config.cameras:
        cameras.open(camera)
    counted = lambda camera: metrics.registry.get_sample_value(  # noqa: E731
        "crowd_frames_processed_total", {"camera": camera}
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(120):
            while min(counted("a") or 0, counted("b") or 0) < 4:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
        await cameras.stop_all()
        worker.close()
    for camera, source in cameras.sources.items():
        assert source.reader.converted == counted(camera), camera
        assert source.latest().seq > counted(camera) + 4  # the reader published frames nobody converted
