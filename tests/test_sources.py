"""Camera sources against real media: encoded video files, image folders, an HTTP MJPEG server, and the
faults of issue 8 (files that end or are cut short, zero bytes, garbage, silent or closed ports, huge and
odd images). Each test reads through the real decoders; nothing is mocked."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from aiohttp import web

from crowdstream.stream.sources import DEMO_CLIP, Frame, Source, SourceError, SourceFault, open_source
from crowdstream.stream.sources.capture import AvReader
from crowdstream.stream.sources.folder import FolderReader, decode_image
from crowdstream.stream.sources.source import redact_text
from tests.conftest import frame_index, free_port, marked_frame, wait_until
from tests.data_paths import PART_B

SHANGHAITECH = PART_B / "images"
# Quick retries; timeouts long enough that a loaded 2-core CI machine does not turn the fault under test
# into a timeout (tests about timeouts set their own).
FAST = {"open_timeout": 10.0, "read_timeout": 10.0, "max_backoff": 0.2}


# --- helpers -----------------------------------------------------------------------------------------


def write_video(path: Path, frames: list[np.ndarray], fps: int = 15) -> Path:
    """H.264 with PyAV (MP4, or MPEG-TS when the suffix is .ts)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "ultrafast"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def drain(source: Source, timeout: float = 20.0) -> list[Frame]:
    """Take every frame the consumer can get until the source ends (or stops producing)."""
    taken: list[Frame] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = source.wait(taken[-1].seq if taken else 0, timeout=0.5)
        if frame is not None:
            taken.append(frame)
        elif source.status in ("ended", "down"):
            return taken
    pytest.fail(f"{source} did not end within {timeout} s")


@pytest.fixture
def started() -> Iterator[Callable[..., Source]]:
    """open_source + start, with every source stopped at the end of the test."""
    sources: list[Source] = []

    def start(camera_id: str, url: str | Path, **kwargs) -> Source:
        source = open_source(camera_id, str(url), **kwargs)
        sources.append(source)
        source.start()
        return source

    yield start
    for source in sources:
        source.stop(timeout=1.0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 marked frames, 320×240 at 15 fps."""
    return write_video(tmp_path_factory.mktemp("video") / "marked.mp4", [marked_frame(i) for i in range(30)])


# --- video files -------------------------------------------------------------------------------------


def test_reader_decodes_every_frame_of_a_file_in_order(clip: Path) -> None:
    reader = AvReader(str(clip), finite=True)
    frames = [(pixels(), media_time) for pixels, media_time in reader.frames()]
    assert [frame_index(image) for image, _ in frames] == list(range(30))
    assert all(image.shape == (240, 320, 3) and image.dtype == np.uint8 for image, _ in frames)
    assert [t for _, t in frames] == pytest.approx([i / 15 for i in range(30)], abs=1e-6)


def test_file_plays_at_its_own_rate_then_ends(clip: Path, started) -> None:
    source = started("file", clip, loop=False)
    taken = drain(source)
    assert source.status == "ended" and source.reconnects == 0 and source.last_error is None
    assert taken[-1].seq == 30, "the last frame is always there for the taker"
    assert all(frame_index(frame.image) == frame.seq - 1 for frame in taken)
    assert [f.seq for f in taken] == sorted({f.seq for f in taken})
    # Paced, not decoded flat out: 29 frame intervals at 15 fps take at least ~1.9 s of wall clock.
    assert taken[-1].timestamp - taken[0].timestamp >= 0.8 * (taken[-1].seq - taken[0].seq) / 15


def test_file_loops_forever_by_default(clip: Path, started) -> None:
    source = started("loop", clip, fps=100.0)
    frame = source.wait(0, timeout=10)
    while frame.seq <= 70:
        frame = source.wait(frame.seq, timeout=10)
    assert source.status == "up" and source.reconnects == 0
    assert frame_index(frame.image) == (frame.seq - 1) % 30


def test_frames_nobody_takes_are_replaced_not_queued(clip: Path, started) -> None:
    source = started("unwatched", clip, loop=False, fps=200.0)
    wait_until(lambda: source.status == "ended", 10, "the file ends")
    newest = source.latest()
    assert newest.seq == 30 and frame_index(newest.image) == 29, "only the newest frame is kept"
    assert source.latest(after_seq=30) is None
    assert source.fps > 0


class Countdown:
    """A live reader of numbered pictures that counts its BGR conversions and pretends to have skipped
    `skip[i]` frames undecoded before picture i (as a reader catching up with real time does)."""

    finite = False

    def __init__(self, skip: list[int]) -> None:
        self.skip, self.skipped, self.converted = skip, 0, []
        self.go_on = threading.Event()  # the pictures after the first wait for this

    def frames(self):
        for index, skipped in enumerate(self.skip):
            self.skipped += skipped
            yield (lambda index=index: self.convert(index)), None
            self.go_on.wait(5)
        time.sleep(5)  # then silence, as a live camera between frames

    def convert(self, index: int) -> np.ndarray:
        self.converted.append(index)
        return marked_frame(index)


def test_frame_numbers_count_the_frames_a_reader_skipped() -> None:
    reader = Countdown([0, 0, 3, 0, 5])
    reader.go_on.set()
    source = Source("cam", "rtsp://example/", reader)
    source.start()
    try:
        wait_until(lambda: source.latest(0) is not None and source.latest(0).seq == 13, 5, "five pictures")
    finally:
        source.stop(timeout=0.1)
    # pictures 0..4 are frames 1, 2, (3 skipped) 6, 7, (5 skipped) 13: a consumer sees what it missed
    assert frame_index(source.latest().image) == 4


def test_pixels_are_converted_only_for_frames_someone_takes_and_only_once() -> None:
    reader = Countdown([0] * 6)
    source = Source("cam", "rtsp://example/", reader)
    source.start()
    try:
        first = source.wait(0, timeout=5)
        reader.go_on.set()
        wait_until(lambda: source.latest(0).seq == 6, 5, "six pictures")
        newest = source.latest()
        threads = [threading.Thread(target=lambda: newest.image) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        source.stop(timeout=0.1)
    assert frame_index(first.image) == 0 and frame_index(newest.image) == 5
    assert sorted(reader.converted) == [0, 5]  # frames 2..5 were never asked for; 6 once for 4 threads


def test_resolution_change_mid_stream_passes_through(tmp_path: Path) -> None:
    small = write_video(tmp_path / "a.ts", [marked_frame(i, 320, 240) for i in range(8)])
    large = write_video(tmp_path / "b.ts", [marked_frame(i, 480, 360) for i in range(8)])
    joined = tmp_path / "joined.ts"  # MPEG-TS segments concatenate; the second brings its own SPS
    joined.write_bytes(small.read_bytes() + large.read_bytes())
    shapes = [pixels().shape for pixels, _ in AvReader(str(joined), finite=True).frames()]
    assert shapes[0] == (240, 320, 3) and shapes[-1] == (360, 480, 3)
    assert len(shapes) >= 14, f"at most a frame or two lost at the splice, got {len(shapes)}"


def test_truncated_stream_plays_what_it_has_then_ends(tmp_path: Path, started) -> None:
    whole = write_video(tmp_path / "whole.ts", [marked_frame(i) for i in range(30)])
    cut = tmp_path / "cut.ts"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    source = started("cut", cut, loop=False, fps=100.0)
    wait_until(lambda: source.status == "ended", 10, "the truncated file ends")
    assert 5 <= source.latest().seq < 30
    assert frame_index(source.latest().image) == source.latest().seq - 1


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("zero bytes", "empty file"),
        ("garbage", "Invalid data found when processing input"),
        ("truncated mp4", "Invalid data found when processing input"),
    ],
)
def test_unreadable_file_goes_down_and_keeps_retrying(
    damage: str, reason: str, clip: Path, tmp_path: Path, started
) -> None:
    path = tmp_path / "bad.mp4"
    contents = {"zero bytes": b"", "garbage": os.urandom(50_000), "truncated mp4": clip.read_bytes()[:3000]}
    path.write_bytes(contents[damage])
    source = started("bad", path, **FAST)
    wait_until(lambda: source.reconnects >= 3, 10, "three retries")
    assert source.status == "down" and source.latest() is None
    assert source.last_error == reason


def test_a_file_that_is_fixed_recovers_by_itself(clip: Path, tmp_path: Path, started) -> None:
    path = tmp_path / "later.mp4"
    path.write_bytes(b"")
    source = started("later", path, **FAST)
    wait_until(lambda: source.status == "down", 10, "the empty file is reported")
    path.write_bytes(clip.read_bytes())
    wait_until(lambda: source.status == "up", 10, "the source recovers once the file is whole")
    assert source.latest() is not None and source.last_error is not None


def test_large_video_frames_are_downscaled_by_the_decoder(clip: Path) -> None:
    pixels, _ = next(AvReader(str(clip), finite=True, max_pixels=160 * 120).frames())
    image = pixels()
    assert image.shape == (120, 160, 3)


def test_demo_clip_is_real_720p_video_that_loops(started) -> None:
    assert DEMO_CLIP.stat().st_size <= 8_000_000
    source = started("demo", "demo")
    frame = source.wait(0, timeout=10)
    assert frame.image.shape == (720, 1280, 3)
    assert frame.image.std() > 20, "a real picture, not a flat colour"
    assert source.status == "up"


# --- image folders -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real crowd photos plus every kind of bad still image users drop into folders."""
    root = tmp_path_factory.mktemp("images")
    photo = cv2.imread(str(SHANGHAITECH / "IMG_1.jpg"))
    cv2.imwrite(str(root / "01-photo.jpg"), photo)
    rgba = cv2.cvtColor(cv2.resize(photo, (200, 150)), cv2.COLOR_BGR2BGRA)
    rgba[:, :100, 3] = 0
    cv2.imwrite(str(root / "02-alpha.png"), rgba)
    cv2.imwrite(str(root / "03-one-pixel.png"), photo[:1, :1])
    cv2.imwrite(str(root / "04-sixteen-bit.png"), (cv2.resize(photo, (64, 48)).astype(np.uint16) * 257))
    huge = np.zeros((12000, 12000), np.uint8)
    huge[::100] = 255
    cv2.imwrite(str(root / "05-huge.jpg"), huge)
    cv2.imwrite(str(root / "06-huge.png"), huge, [cv2.IMWRITE_PNG_BILEVEL, 1])  # 1-bit: quick to write
    del huge
    encoded = (root / "01-photo.jpg").read_bytes()
    (root / "07-truncated.jpg").write_bytes(encoded[: len(encoded) // 2])
    (root / "08-empty.jpg").write_bytes(b"")
    (root / "09-garbage.png").write_bytes(os.urandom(4096))
    (root / "10-notes.txt").write_text("not an image")
    return root


def test_folder_shows_good_images_and_skips_bad_ones(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    max_pixels = 1_000_000
    frames = list(FolderReader(folder, camera_id="stills", fps=4, max_pixels=max_pixels).frames())
    shapes = [image.shape for image, _ in frames]
    assert shapes[:4] == [(768, 1024, 3), (150, 200, 3), (1, 1, 3), (48, 64, 3)]
    assert shapes[4][2] == 3 and shapes[4][0] == shapes[4][1] and shapes[4][0] * shapes[4][1] <= max_pixels
    assert len(frames) == 5 and all(image.dtype == np.uint8 for image, _ in frames)
    assert [t for _, t in frames] == [0, 0.25, 0.5, 0.75, 1.0]
    skipped = {
        record.image.rsplit("/", 1)[-1]: record.error
        for record in caplog.records
        if record.msg == "image skipped"
    }
    assert set(skipped) == {"06-huge.png", "07-truncated.jpg", "08-empty.jpg", "09-garbage.png"}
    assert "too large" in skipped["06-huge.png"] and "truncated" in skipped["07-truncated.jpg"]


def test_png_alpha_is_dropped_and_16_bits_become_8(folder: Path) -> None:
    image = decode_image((folder / "02-alpha.png").read_bytes(), max_pixels=10**6)
    assert image.shape == (150, 200, 3)
    deep = decode_image((folder / "04-sixteen-bit.png").read_bytes(), max_pixels=10**6)
    assert deep.dtype == np.uint8 and deep.max() > 100


def test_huge_images_stay_within_a_memory_bound(folder: Path) -> None:
    """A 12000×12000 JPEG would take 432 MB decoded at full size; libjpeg decodes it at 1/4 scale and
    the peak (tracemalloc sees OpenCV's NumPy buffers) stays within a few times the output."""
    max_pixels = 1500 * 1500
    data = (folder / "05-huge.jpg").read_bytes()
    tracemalloc.start()
    try:
        image = decode_image(data, max_pixels=max_pixels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert image.shape == (1500, 1500, 3)
    assert peak <= 6 * max_pixels * 3, f"{peak / 1e6:.0f} MB to decode a {max_pixels * 3 / 1e6:.0f} MB image"
    with pytest.raises(SourceFault, match="too large: 12000x12000"):
        decode_image((folder / "06-huge.png").read_bytes(), max_pixels=4096 * 4096)


def test_folder_source_loops_as_a_slideshow_and_warns_once_per_bad_image(
    folder: Path, started, caplog: pytest.LogCaptureFixture
) -> None:
    source = started("slideshow", folder, fps=50.0, max_pixels=1_000_000)
    frame = source.wait(0, timeout=10)
    while frame.seq <= 12:  # more than two passes over the five usable images
        frame = source.wait(frame.seq, timeout=10)
    assert source.status == "up" and source.reconnects == 0
    warned = [r.image for r in caplog.records if r.msg == "image skipped" and r.levelname == "WARNING"]
    assert len(warned) == len(set(warned)) == 4


def test_single_image_file_is_a_one_picture_camera(folder: Path, started) -> None:
    source = started("still", folder / "01-photo.jpg", fps=20.0)
    frame = source.wait(0, timeout=10)
    frame = source.wait(frame.seq, timeout=10)
    assert frame.seq >= 2 and frame.image.shape == (768, 1024, 3)


def test_folder_without_usable_images_goes_down(tmp_path: Path, started) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    source = started("nothing", tmp_path, **FAST)
    wait_until(lambda: source.reconnects >= 2, 10, "retries")
    assert (
        source.status == "down"
        and "no usable image" in source.last_error
        and "empty file" in source.last_error
    )


# --- URLs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/no/such/video.mp4", "no such file"),
        ("ftp://camera/stream", "unsupported source"),
        ("", "empty source URL"),
    ],
)
def test_urls_that_can_never_work_are_refused_at_once(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source("cam", url)


@pytest.mark.parametrize("option", ["fps", "open_timeout", "read_timeout", "max_backoff", "max_pixels"])
def test_limits_must_be_positive(option: str, clip: Path) -> None:
    with pytest.raises(SourceError, match=f"'cam': {option} must be positive, got 0"):
        open_source("cam", str(clip), **{option: 0})


def test_missing_webcam_is_reported_and_retried(started) -> None:
    index = next(i for i in range(64, 128) if not Path(f"/dev/video{i}").exists())
    source = started("webcam", str(index), **FAST)
    wait_until(lambda: source.reconnects >= 1, 10, "a retry")
    assert source.status == "down" and source.last_error == f"No such file or directory: /dev/video{index}"


# --- network cameras that misbehave --------------------------------------------------------------------


class TcpCamera:
    """A TCP listener that accepts connections and then says nothing, or only garbage."""

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            if self.reply:
                connection.sendall(self.reply)

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def tcp_camera() -> Iterator[Callable[[bytes], TcpCamera]]:
    cameras: list[TcpCamera] = []

    def make(reply: bytes = b"") -> TcpCamera:
        cameras.append(TcpCamera(reply))
        return cameras[-1]

    yield make
    for camera in cameras:
        camera.close()


def test_camera_that_never_answers_is_down_within_the_open_timeout(tcp_camera, started) -> None:
    camera = tcp_camera(b"")
    source = started("silent", f"rtsp://127.0.0.1:{camera.port}/stream", open_timeout=1.0, max_backoff=0.5)
    wait_until(lambda: source.status == "down", 10, "the silent camera is reported down")
    assert source.last_error == "no valid answer within 1 s"
    wait_until(lambda: source.reconnects >= 2, 10, "retries")
    began = time.monotonic()
    source.stop(timeout=0.5)
    assert time.monotonic() - began < 1.5, "stop() may not wait for a blocked open beyond its timeout"
    assert source.status == "stopped"


def test_closed_port_is_reported_as_refused(started) -> None:
    source = started("closed", f"rtsp://127.0.0.1:{free_port()}/stream", **FAST)
    wait_until(lambda: source.reconnects >= 2, 10, "retries")
    assert source.status == "down" and source.last_error == "Connection refused"


def test_camera_sending_garbage_bytes_goes_down(tcp_camera, started) -> None:
    camera = tcp_camera(os.urandom(64 * 1024))
    source = started("garbage", f"rtsp://127.0.0.1:{camera.port}/stream", **{**FAST, "open_timeout": 2.0})
    wait_until(lambda: source.reconnects >= 2, 15, "retries")
    assert source.status == "down" and source.last_error and source.latest() is None


# --- HTTP MJPEG ----------------------------------------------------------------------------------------


class MjpegServer:
    """aiohttp on its own thread: `/stream` sends `frames_per_connection` JPEGs of a real crowd photo as
    multipart/x-mixed-replace (what IP cameras send) and then hangs up; `/garbage` sends random bytes."""

    BOUNDARY = "frame"

    def __init__(self, image: np.ndarray, frames_per_connection: int, fps: float = 20.0) -> None:
        self.jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        self.frames_per_connection = frames_per_connection
        self.fps = fps
        self.port = free_port()
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={self.BOUNDARY}"}
        )
        await response.prepare(request)
        for _ in range(self.frames_per_connection):
            part = (
                (
                    f"--{self.BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(self.jpeg)}\r\n\r\n"
                ).encode()
                + self.jpeg
                + b"\r\n"
            )
            await response.write(part)
            await asyncio.sleep(1 / self.fps)
        return response

    async def bad_parts(self, request: web.Request) -> web.StreamResponse:
        """A well-formed multipart stream whose 'JPEG' parts are random bytes: a camera gone mad."""
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={self.BOUNDARY}"}
        )
        await response.prepare(request)
        while True:
            junk = os.urandom(len(self.jpeg))
            part = (
                f"--{self.BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(junk)}\r\n\r\n"
            ).encode()
            await response.write(part + junk + b"\r\n")
            await asyncio.sleep(1 / (5 * self.fps))

    async def garbage(self, request: web.Request) -> web.Response:
        return web.Response(body=os.urandom(256 * 1024), content_type="application/octet-stream")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/stream", self.stream)
        app.router.add_get("/garbage", self.garbage)
        app.router.add_get("/bad-parts", self.bad_parts)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def mjpeg_server() -> Iterator[MjpegServer]:
    photo = cv2.resize(cv2.imread(str(SHANGHAITECH / "IMG_2.jpg")), (512, 384))
    server = MjpegServer(photo, frames_per_connection=15)
    server.start()
    yield server
    server.stop()


def test_http_mjpeg_camera_streams_and_reconnects_after_hangup(mjpeg_server: MjpegServer, started) -> None:
    source = started("mjpeg", f"{mjpeg_server.url}/stream", **FAST)
    frame = source.wait(0, timeout=10)
    assert frame is not None and frame.image.shape == (384, 512, 3)
    wait_until(
        lambda: mjpeg_server.connections >= 2 and source.reconnects >= 1,
        15,
        "the source reconnects after the camera hangs up",
    )
    first_connection_frames = 15
    wait_until(
        lambda: (source.latest() or frame).seq > first_connection_frames, 15, "frames of the 2nd connection"
    )
    assert source.status == "up" and source.last_error == "stream ended"


def test_whoever_is_told_of_a_frame_already_sees_the_source_up(mjpeg_server: MjpegServer) -> None:
    """Frame and status change together: the first frame after the camera hung up came with "down" (CI, loaded)."""
    statuses: list[str] = []
    source = open_source("mjpeg", f"{mjpeg_server.url}/stream", **FAST)
    source.on_frame = lambda: statuses.append(source.status)
    source.start()
    try:
        wait_until(lambda: source.reconnects >= 1 and len(statuses) > 20, 20, "frames of two connections")
    finally:
        source.stop(timeout=1.0)
    assert set(statuses) == {"up"}


def test_http_garbage_goes_down(mjpeg_server: MjpegServer, started) -> None:
    source = started("junk", f"{mjpeg_server.url}/garbage", **FAST)
    wait_until(lambda: source.reconnects >= 2, 15, "retries")
    assert source.status == "down" and source.last_error and source.latest() is None


def test_http_stream_of_undecodable_pictures_goes_down(mjpeg_server: MjpegServer, started) -> None:
    source = started("mad", f"{mjpeg_server.url}/bad-parts", **{**FAST, "read_timeout": 2.0})
    wait_until(lambda: source.status == "down", 30, "a stream without a single decodable picture is given up")
    assert "undecodable" in source.last_error and source.latest() is None


def test_camera_passwords_stay_out_of_logs(started, caplog: pytest.LogCaptureFixture) -> None:
    source = started("secret", f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/stream", **FAST)
    wait_until(lambda: source.status == "down", 10, "the refused camera is reported")
    assert source.safe_url.startswith("rtsp://admin:***@127.0.0.1:") and "hunter2" not in repr(source)
    logged = [record for record in caplog.records if record.name.startswith("crowdstream.stream.sources")]
    assert logged and all("hunter2" not in str(record.__dict__) for record in logged)


@pytest.mark.parametrize(
    ("url", "error", "expected"),
    [
        (
            "rtsp://admin:hunter2@cam/x",
            "401 for rtsp://admin:hunter2@cam/x",
            "401 for rtsp://admin:***@cam/x",
        ),
        ("rtsp://admin:p%40ss@cam/x", "bad password p@ss, p%40ss", "bad password ***, ***"),
        ("rtsp://cam/x", "Connection refused", "Connection refused"),
    ],
)
def test_errors_shown_to_operators_never_carry_the_camera_password(url, error, expected) -> None:
    assert redact_text(error, url) == expected
