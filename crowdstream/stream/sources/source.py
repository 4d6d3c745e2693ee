"""One camera's reader thread: keeps only the newest frame, paces files, survives every failure.

The worker is slower than most cameras, so a source must never queue: each new frame replaces the previous
one, and frames are numbered so a consumer sees from the gaps how many it missed. A frame's pixels are
converted to BGR only when somebody asks for them: a camera that is counted twice a second and watched by
nobody pays the conversion for two frames a second, not for all of them, and does not even decode the
frames no other frame refers to (stream.sources.decoding). Whatever goes wrong (connection
refused, stalled stream, undecodable bytes, a file that ends) the thread records it, reports the camera
down and tries again with capped exponential backoff, forever; it never raises and never stops other
cameras.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Generator
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np

from crowdstream.stream.sources.decoding import lower_priority
from crowdstream.stream.threads import set_os_thread_name

log = logging.getLogger(__name__)

Status = Literal["starting", "up", "down", "stopped", "ended"]
"""A camera's state, as sources report it and the hub, the API and the page show it."""

MIN_BACKOFF = 0.5  # seconds before the first retry; doubles per failure up to max_backoff
FPS_SMOOTHING = 0.1  # EMA weight of the newest frame interval
MAX_PACING_LAG = 1.0  # a paced source this far behind its clock re-anchors instead of bursting


class SourceFault(Exception):
    """A reader's description of why a stream cannot be read right now (shown as `last_error`)."""


Pixels = Callable[[], np.ndarray]
"""A decoded picture not converted yet: calling it returns the BGR uint8 (H, W, 3) array."""


class Frame:
    """One captured frame. `image` is BGR uint8 (H, W, 3), converted on first use (once, whichever thread
    asks first) and shared with every taker: copy it before drawing on it. `seq` counts the camera's
    frames from 1, skipped ones included, so gaps show frames nobody got."""

    __slots__ = ("_image", "_lock", "_pixels", "seq", "timestamp")

    def __init__(self, image: np.ndarray | Pixels, timestamp: float, seq: int) -> None:
        self._image = image if isinstance(image, np.ndarray) else None
        self._pixels = None if isinstance(image, np.ndarray) else image
        self._lock = threading.Lock()
        self.timestamp = timestamp  # wall-clock capture time, time.time()
        self.seq = seq

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            with self._lock:
                if self._image is None:
                    self._image, self._pixels = self._pixels(), None
        return self._image

    def __repr__(self) -> str:
        return f"Frame(seq={self.seq}, timestamp={self.timestamp:.3f})"


class Reader(Protocol):
    """How a source kind opens and decodes. `finite` media (files, folders) are paced and may loop;
    for live media an end of stream is a failure."""

    finite: bool
    skipped: int  # frames a live reader dropped undecoded to catch up with real time
    wanted_fps: float | None  # set by the source: frames a second anyone needs now (None: every frame)

    def frames(self) -> Generator[tuple[np.ndarray | Pixels, float | None], None, float | None]:
        """Open the medium and yield (BGR image or its Pixels, media time in seconds or None); close it when the
        generator is closed. Raise on failure. Finite media return the time their last frame ends,
        so a slideshow's last image (or a one-image loop) is shown as long as the others."""


def fit_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio and at most `max_pixels` pixels (never upscales)."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def redact(url: str) -> str:
    """`url` without its password (rtsp://admin:secret@cam/ → rtsp://admin:***@cam/): camera URLs often
    carry credentials and logs must not."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def redact_text(text: str, url: str) -> str:
    """`text` (an error message that may quote the camera's URL) with the URL's password replaced by
    ***, as typed and percent-decoded: error messages reach the API and the page."""
    password = urlsplit(url).password
    if not password:
        return text
    for secret in sorted({password, unquote(password)}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class Source:
    """A camera read by its own daemon thread; the worker polls `latest()` or blocks in `wait()`.
    `on_frame`, when set, is called (in the reader thread) after every new frame: somebody watches, so
    the reader must deliver every frame; otherwise `counted_fps` frames a second are enough (None: all).
    `priority` is the nice value the thread adds to its own, so decoding yields to inference."""

    def __init__(
        self,
        camera_id: str,
        url: str,
        reader: Reader,
        *,
        loop: bool = True,
        max_backoff: float = 30.0,
        counted_fps: float | None = None,
        priority: int = 0,
    ) -> None:
        self.camera_id = camera_id
        self.url = url
        self.loop = loop
        self.max_backoff = max_backoff
        self.status: Status = "starting"
        self.reconnects = 0
        self.fps = 0.0
        self.last_error: str | None = None  # why the camera went down last (its password redacted)
        self.next_retry: float | None = None  # wall-clock time of the next attempt while waiting for it
        self.on_frame: Callable[[], None] | None = None
        self.counted_fps = counted_fps
        self.priority = priority
        self._reader = reader
        self._frame: Frame | None = None
        self._skipped = 0  # the reader's skipped frames already numbered
        self._last_capture: float | None = None
        self._interval: float | None = None  # smoothed seconds between captures
        self._anchor: float | None = None  # monotonic time of media time 0 in the current pass
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"source-{camera_id}", daemon=True)

    def __repr__(self) -> str:
        return f"Source({self.camera_id!r}, {self.safe_url!r}, status={self.status!r})"

    @property
    def reader(self) -> Reader:
        """What decodes this camera (its counters: frames skipped, and for video, converted)."""
        return self._reader

    @property
    def safe_url(self) -> str:
        """The URL with any password replaced by ***, for logs and status pages."""
        return redact(self.url)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish and join it for at most `timeout` s. A thread stuck inside a blocking
        open or read ends on its own within the open/read timeout and releases the capture then."""
        with self._changed:
            self._stopping.set()
            self.status = "stopped"
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def latest(self, after_seq: int = 0) -> Frame | None:
        """The newest frame if it is newer than `after_seq`, else None. Never blocks on the reader."""
        with self._changed:
            return self._take(after_seq)

    def wait(self, after_seq: int, timeout: float) -> Frame | None:
        """Like `latest`, but wait up to `timeout` s for a frame newer than `after_seq`."""
        with self._changed:
            self._changed.wait_for(lambda: self._newer(after_seq) or self._stopping.is_set(), timeout)
            return self._take(after_seq)

    def _newer(self, after_seq: int) -> bool:
        return self._frame is not None and self._frame.seq > after_seq

    def _take(self, after_seq: int) -> Frame | None:
        return self._frame if self._newer(after_seq) else None

    def _publish(self, image: np.ndarray | Pixels) -> None:
        """Hand a frame to readers. The status turns "up" under the same lock, so nobody who sees a new
        frame reads the status of the outage before it."""
        now = time.time()
        skipped, self._skipped = self._reader.skipped - self._skipped, self._reader.skipped
        with self._changed:
            seq = (self._frame.seq if self._frame else 0) + skipped + 1
            self._frame = Frame(image, now, seq)
            came_up = self._set_status("up")
            self._changed.notify_all()
        if self.on_frame is not None:
            self.on_frame()
        self._update_fps(now)
        if came_up:
            log.info(
                "source up",
                extra={"camera": self.camera_id, "url": self.safe_url, "reconnects": self.reconnects},
            )

    def _update_fps(self, now: float) -> None:
        """Smooth the frame interval, not the rate: 1/dt overstates the rate whenever frames jitter."""
        if self._last_capture is not None and now > self._last_capture:
            interval = now - self._last_capture
            if self._interval is not None:
                interval = self._interval + FPS_SMOOTHING * (interval - self._interval)
            self._interval = interval
            self.fps = 1.0 / interval
        self._last_capture = now

    def _set_status(self, status: Status) -> bool:
        """Change the status unless it is already that or the source was stopped; True if it changed."""
        with self._changed:
            if self.status == status or self._stopping.is_set():
                return False
            self.status = status
            return True

    def _run(self) -> None:
        """Play the medium again and again: loop finite media, back off after failures, until stopped."""
        set_os_thread_name(self._thread.name)  # FFmpeg's decoder threads inherit name and priority
        lower_priority(self.priority)
        delay = min(MIN_BACKOFF, self.max_backoff)
        while not self._stopping.is_set():
            before = self._frame.seq if self._frame else 0
            error = self._play()
            if self._stopping.is_set():
                break
            played = (self._frame.seq if self._frame else 0) > before
            if error is None and played and self._reader.finite:
                if not self.loop:
                    self._set_status("ended")
                    log.info("source ended", extra={"camera": self.camera_id, "url": self.safe_url})
                    return
                continue
            if played:
                delay = min(MIN_BACKOFF, self.max_backoff)
            self._fail(error or ("stream ended" if played else "no decodable frames"))
            self.next_retry = time.time() + delay
            self._stopping.wait(delay)
            self.next_retry = None
            delay = min(delay * 2, self.max_backoff)
            self.reconnects += 1

    def _play(self) -> str | None:
        """Publish frames until the medium ends (None) or fails (the reason)."""
        self._anchor = None
        try:
            with contextlib.closing(self._reader.frames()) as frames:
                while True:
                    self._reader.wanted_fps = self.counted_fps if self.on_frame is None else None
                    try:
                        image, media_time = next(frames)
                    except StopIteration as end:  # finite media return when their last frame ends
                        self._pace(end.value)
                        return None
                    if self._pace(media_time):
                        return None
                    self._publish(image)
        except Exception as exc:  # noqa: BLE001 - any reader failure is reported and retried, never raised
            return str(exc) or type(exc).__name__

    def _pace(self, media_time: float | None) -> bool:
        """Sleep until `media_time` on this pass's clock; True if the source was stopped meanwhile.
        When decoding falls behind, the clock re-anchors rather than rushing to catch up."""
        if media_time is None:
            return self._stopping.is_set()
        now = time.monotonic()
        if self._anchor is None or now - (self._anchor + media_time) > MAX_PACING_LAG:
            self._anchor = now - media_time
        return self._stopping.wait(max(0.0, self._anchor + media_time - now))

    def _fail(self, error: str) -> None:
        """Record a failure. Logged as a warning when the camera goes down or the reason changes; the
        same error on every retry of a long outage is logged at debug level only. The log comes first,
        so whoever sees the status change also finds the reason logged."""
        error = redact_text(error, self.url)
        repeated = self.status == "down" and error == self.last_error
        self.last_error = error
        self.fps, self._interval, self._last_capture = 0.0, None, None
        log.log(
            logging.DEBUG if repeated else logging.WARNING,
            "source down",
            extra={
                "camera": self.camera_id,
                "url": self.safe_url,
                "error": error,
                "reconnects": self.reconnects,
            },
        )
        self._set_status("down")
