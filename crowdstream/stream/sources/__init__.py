"""Camera sources: one reader thread per camera that keeps only the newest frame and never gives up.

    source = open_source("gate", "rtsp://10.0.0.7/stream1")
    source.start()
    frame = source.wait(after_seq=0, timeout=5.0)   # Frame(image=BGR uint8, timestamp, seq) or None
    source.stop()

URLs: `rtsp://` cameras (over TCP), `http(s)://` MJPEG or other FFmpeg-readable streams, webcams
(`/dev/videoN` or an index such as `0`), video files (paced at their own frame rate, looping unless
`loop=False`), image folders or single images (a slideshow at `fps`, default 1), and `demo`, the bundled
clip of real crowds.
"""

from __future__ import annotations

import re
from pathlib import Path

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.frames import IMAGE_SUFFIXES
from crowdstream.stream.sources.capture import AvReader
from crowdstream.stream.sources.decoding import DecodeConfig
from crowdstream.stream.sources.folder import FolderReader
from crowdstream.stream.sources.source import Frame, Reader, Source, SourceFault, Status

__all__ = [
    "DEMO_CLIP",
    "DecodeConfig",
    "Frame",
    "Source",
    "SourceError",
    "SourceFault",
    "Status",
    "local_path",
    "open_source",
]

DEMO_CLIP = Path(__file__).resolve().parents[1] / "demo" / "crowd-demo.mp4"
_WEBCAM = re.compile(r"^(?:/dev/video)?(\d+)$")
_STREAM_SCHEMES = {
    "rtsp": {"rtsp_transport": "tcp"},
    "rtsps": {"rtsp_transport": "tcp"},
    "http": {},
    "https": {},
}


def local_path(url: str) -> Path:
    """The file or folder a local source names: `demo` is the bundled clip; `file://` and `~` are understood."""
    return DEMO_CLIP if url == "demo" else Path(url.removeprefix("file://")).expanduser()


class SourceError(CrowdstreamError):
    """A camera URL that cannot name a source (unknown scheme, missing file, bad rate)."""


def open_source(
    camera_id: str,
    url: str,
    *,
    loop: bool = True,
    open_timeout: float = 10.0,
    read_timeout: float = 10.0,
    max_backoff: float = 30.0,
    max_pixels: int = 4096 * 4096,
    fps: float | None = None,
    counted_fps: float | None = None,
    decode: DecodeConfig | None = None,
) -> Source:
    """A not yet started Source for `url`. `fps` paces files (default: their own rate) and image
    folders (default 1 per second); live streams run at the camera's rate. `counted_fps` is how many
    frames a second the worker counts (None: all) and `decode` how video is decoded (see
    stream.sources.decoding). Raises SourceError for a URL that can never work; everything that may
    recover (a camera that is off, garbage data) is retried."""
    if not url.strip():
        raise SourceError(f"camera {camera_id!r}: empty source URL")
    limits = {
        "open_timeout": open_timeout,
        "read_timeout": read_timeout,
        "max_backoff": max_backoff,
        "max_pixels": max_pixels,
        "fps": 1 if fps is None else fps,
    }
    for name, value in limits.items():
        if value <= 0:
            raise SourceError(f"camera {camera_id!r}: {name} must be positive, got {value}")
    decode = decode or DecodeConfig()
    reader = _reader(
        camera_id,
        url.strip(),
        fps=fps,
        open_timeout=open_timeout,
        read_timeout=read_timeout,
        max_pixels=max_pixels,
        threads=decode.threads,
        skip_unused=decode.skip_unused,
    )
    return Source(
        camera_id,
        url,
        reader,
        loop=loop,
        max_backoff=max_backoff,
        counted_fps=counted_fps,
        priority=decode.priority,
    )


def _reader(camera_id: str, url: str, *, fps: float | None, max_pixels: int, **video: float | bool) -> Reader:
    """The reader of `url`; `video` holds the AvReader options (timeouts, decoding)."""
    common = {"max_pixels": max_pixels, **video}
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in _STREAM_SCHEMES:
        return AvReader(url, finite=False, options=_STREAM_SCHEMES[scheme], **common)
    webcam = _WEBCAM.match(url)
    if webcam:
        return AvReader(f"/dev/video{webcam.group(1)}", finite=False, container_format="v4l2", **common)
    if scheme not in ("", "file"):
        raise SourceError(
            f"camera {camera_id!r}: unsupported source {url!r}; expected rtsp://, http(s)://, "
            "/dev/videoN or a webcam index, a video file, an image folder or 'demo'"
        )
    path = local_path(url)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
        return FolderReader(path, camera_id=camera_id, fps=fps or 1.0, max_pixels=max_pixels)
    if path.is_file():
        return AvReader(str(path), finite=True, fps=fps, **common)
    raise SourceError(f"camera {camera_id!r}: no such file or folder: {path}")
