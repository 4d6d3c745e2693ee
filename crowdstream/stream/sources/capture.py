"""Video through FFmpeg (PyAV): files, RTSP cameras, HTTP MJPEG and other HTTP streams, V4L2 webcams.

Why PyAV rather than OpenCV's VideoCapture (both wrap FFmpeg): measured against a real RTSP server here,
PyAV's read timeout fires once, exactly after `read_timeout` without data, where OpenCV 5 retried its
timeout three times before `read()` returned False; PyAV takes FFmpeg options per stream (RTSP over TCP)
where OpenCV only reads a process-wide environment variable; and PyAV raises errors that say what went
wrong ("Connection refused", "Invalid data found") where OpenCV returns a bare False. Decoding packet by
packet also lets a stream survive a few corrupt packets, and every frame carries its own size, so a
resolution change mid-stream simply yields frames of the new size.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Generator, Iterator

import av
import numpy as np

from crowdstream.stream.sources.decoding import skip_frames
from crowdstream.stream.sources.lag import CatchUp
from crowdstream.stream.sources.source import Pixels, SourceFault, fit_size, redact

DEFAULT_FPS = 25.0  # pace of a file that states no frame rate


class AvReader:
    """Decodes one URL or file with FFmpeg. Files (`finite`) yield their media time so the source paces
    them at their own frame rate (or at `fps` when given); live streams yield None and are not paced.
    Pictures are yielded as Pixels: the conversion to BGR runs when (and if) someone calls them.
    `wanted_fps`, set by the source while the stream plays, says how many frames a second anyone needs
    (None: all); with `skip_unused`, non-reference frames are then not decoded when few are needed."""

    def __init__(
        self,
        url: str,
        *,
        finite: bool,
        container_format: str | None = None,
        options: dict[str, str] | None = None,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
        max_pixels: int = 4096 * 4096,
        fps: float | None = None,
        threads: int = 1,
        skip_unused: bool = True,
    ) -> None:
        self.url = url
        self.finite = finite
        self.container_format = container_format
        self.options = options or {}
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.max_pixels = max_pixels
        self.fps = fps
        self.threads = threads
        self.skip_unused = skip_unused
        self.wanted_fps: float | None = None
        self.skipped = 0  # live packets skipped undecoded to catch up with real time
        self.converted = 0  # frames converted to BGR: the ones somebody took

    def frames(self) -> Generator[tuple[Pixels, float | None], None, float | None]:
        try:
            yield from self._frames()
        except av.error.FFmpegError as exc:
            raise SourceFault(self._describe(exc)) from exc

    @staticmethod
    def _describe(exc: av.error.FFmpegError) -> str:
        """FFmpeg's reason without its errno noise; a missing or forbidden path is named, since a
        webcam index opens /dev/videoN and a file may vanish."""
        reason = exc.strerror or str(exc)
        if isinstance(exc, (FileNotFoundError, PermissionError)) and exc.filename:
            return f"{reason}: {exc.filename}"
        return reason

    def _frames(self) -> Generator[tuple[Pixels, float | None], None, float | None]:
        container = self._open()
        try:
            if not container.streams.video:
                raise SourceFault(f"no video stream in {self.url}")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = self.threads
            stream.codec_context.thread_type = "FRAME" if self.threads > 1 else "SLICE"  # PyAV's default
            stream_rate = float(stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
            media_time = None
            for index, frame in enumerate(self._decode(container, stream, stream_rate)):
                media_time = self._media_time(frame, index, stream_rate)
                yield functools.partial(self._image, frame), media_time
            return None if media_time is None else media_time + 1 / (self.fps or stream_rate)
        finally:
            container.close()

    def _open(self) -> av.container.InputContainer:
        """The opened input. FFmpeg's RTSP demuxer turns an open timeout into "Invalid data", so a
        failure that took the whole open timeout is reported as the timeout it was."""
        if self.finite and os.path.getsize(self.url) == 0:
            raise SourceFault("empty file")
        began = time.monotonic()
        try:
            return av.open(
                self.url,
                format=self.container_format,
                options=self.options,
                timeout=(self.open_timeout, self.read_timeout),
            )
        except av.error.FFmpegError as exc:
            if isinstance(exc, av.error.ExitError) or time.monotonic() - began >= self.open_timeout:
                raise SourceFault(f"no valid answer within {self.open_timeout:g} s") from None
            raise

    def _decode(
        self, container: av.container.InputContainer, stream: av.VideoStream, rate: float
    ) -> Iterator[av.VideoFrame]:
        """Frames of `stream`, skipping corrupt packets. Packets that keep arriving without giving a
        picture for `read_timeout` seconds mean the bytes are garbage, just as silence would. Whether
        non-reference frames are decoded is decided again before every packet: a viewer who arrives
        gets every frame from the next packet on."""
        last_picture, problem = time.monotonic(), "no picture"
        catch_up = None if self.finite else CatchUp(redact(self.url))
        try:
            for packet in container.demux(stream):
                if catch_up is not None and self._skip(catch_up, packet):
                    continue
                stream.codec_context.skip_frame = skip_frames(self.wanted_fps, rate, self.skip_unused)
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    frames, problem = [], self._describe(exc)
                if frames:
                    last_picture = time.monotonic()
                elif time.monotonic() - last_picture > self.read_timeout:
                    raise SourceFault(f"undecodable stream for {self.read_timeout:g} s: {problem}")
                yield from frames
        except av.error.ExitError:
            raise SourceFault(f"no data within {self.read_timeout:g} s") from None

    def _skip(self, catch_up: CatchUp, packet: av.Packet) -> bool:
        media_time = None if packet.pts is None else float(packet.pts * packet.time_base)
        skip = catch_up.skip(media_time, packet.is_keyframe, time.monotonic())
        self.skipped += skip
        return skip

    def _image(self, frame: av.VideoFrame) -> np.ndarray:
        """BGR pixels, downscaled by swscale in the same pass when the frame exceeds max_pixels."""
        self.converted += 1
        width, height = fit_size(frame.width, frame.height, self.max_pixels)
        if (width, height) == (frame.width, frame.height):
            return frame.to_ndarray(format="bgr24")
        return frame.to_ndarray(format="bgr24", width=width, height=height, interpolation="AREA")

    def _media_time(self, frame: av.VideoFrame, index: int, stream_rate: float) -> float | None:
        """Seconds into a file: its own timestamps (variable frame rates too), or, at an `fps` override,
        the frame's place in the file (its time × the file's rate, so frames skipped undecoded keep
        their slots) at that pace; index / rate for a file without timestamps. None for live streams."""
        if not self.finite:
            return None
        if frame.time is None:
            return index / (self.fps or stream_rate)
        if self.fps is None:
            return frame.time
        return round(frame.time * stream_rate) / self.fps
