"""Still images as a camera: an image folder (or one image file) played as a slideshow.

Folders are where careless input lives (zero-byte uploads, truncated JPEGs, PNGs with alpha, 1×1 pixels,
12000×12000 scans), so images are checked before decoding: the size comes from the JPEG/PNG header, huge
JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself, and anything that would still need more
than a bounded amount of memory is refused. A bad image is skipped with a warning; only a folder with no
usable image at all fails the source. Which files are images is engines.frames.IMAGE_SUFFIXES, the same
list the data sets and `crowdstream count` use.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Generator
from pathlib import Path

import cv2
import numpy as np

from crowdstream.engines.frames import IMAGE_SUFFIXES, image_files
from crowdstream.stream.sources.source import SourceFault, fit_size

log = logging.getLogger(__name__)

DECODE_HEADROOM = 4  # an image may be decoded at up to this many times max_pixels before being downscaled
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_BMP_MAGIC = b"BM"
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers carry the size
_FULL_SIZE = ((1, cv2.IMREAD_COLOR),)  # (scale divisor, imdecode flags) pairs a format can decode at
_JPEG_REDUCED = (
    *_FULL_SIZE,
    (2, cv2.IMREAD_REDUCED_COLOR_2),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (8, cv2.IMREAD_REDUCED_COLOR_8),
)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, without decoding; None if not found."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        else:
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None if the header is cut short."""
    return struct.unpack(">II", data[16:24]) if len(data) >= 24 else None


def bmp_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a BMP's DIB header (OS/2 12-byte or Windows 40+-byte); None if cut short.
    A negative height marks a top-down bitmap."""
    if len(data) < 26:
        return None
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return width, abs(height)


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """A JPEG, PNG or BMP as BGR uint8 with at most `max_pixels` pixels (alpha and 16 bits dropped).
    Raises SourceFault saying what is wrong with the bytes."""
    if not data:
        raise SourceFault("empty file")
    if data.startswith(b"\xff\xd8"):
        size, reductions = jpeg_size(data), _JPEG_REDUCED
        if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
            raise SourceFault("truncated JPEG (no end-of-image marker)")
    elif data.startswith(_PNG_MAGIC):
        size, reductions = png_size(data), _FULL_SIZE
    elif data.startswith(_BMP_MAGIC):
        size, reductions = bmp_size(data), _FULL_SIZE
    else:
        raise SourceFault("not a JPEG, PNG or BMP image")
    if size is None:
        raise SourceFault("image header is damaged")
    flags = _decode_flags(size, reductions, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise SourceFault("undecodable image data")
    width, height = fit_size(image.shape[1], image.shape[0], max_pixels)
    if (width, height) != (image.shape[1], image.shape[0]):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image


def _decode_flags(size: tuple[int, int], reductions: tuple[tuple[int, int], ...], max_pixels: int) -> int:
    """The imdecode flags that keep the decoded image within DECODE_HEADROOM × max_pixels."""
    width, height = size
    if width < 1 or height < 1:
        raise SourceFault(f"image header says {width}x{height} pixels")
    for factor, flags in reductions:
        if (width // factor) * (height // factor) <= DECODE_HEADROOM * max_pixels:
            return flags
    raise SourceFault(
        f"image too large: {width}x{height} pixels (limit {DECODE_HEADROOM * max_pixels} to decode)"
    )


class FolderReader:
    """The image files of a folder in natural order (2.jpg before 10.jpg), one every 1/fps seconds; the folder is listed
    again on every pass, so images added while it runs are shown on the next one."""

    finite = True
    skipped = 0  # a slideshow never falls behind real time; unusable images are logged, not counted
    wanted_fps: float | None = None  # a slideshow is slow: every image is read whatever the need

    def __init__(
        self, path: Path, *, camera_id: str, fps: float = 1.0, max_pixels: int = 4096 * 4096
    ) -> None:
        self.path = path
        self.camera_id = camera_id
        self.fps = fps
        self.max_pixels = max_pixels
        self._reported: set[tuple[Path, float]] = set()  # (image, mtime) already warned about

    def images(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        return image_files(self.path)

    def _report(self, path: Path, error: str) -> None:
        """Warn about an unusable image once, not on every pass of a looping slideshow (again if the
        file changes)."""
        try:
            key = (path, path.stat().st_mtime)
        except OSError:
            key = (path, -1.0)
        level = logging.DEBUG if key in self._reported else logging.WARNING
        self._reported.add(key)
        log.log(level, "image skipped", extra={"camera": self.camera_id, "image": str(path), "error": error})

    def frames(self) -> Generator[tuple[np.ndarray, float | None], None, float]:
        shown, problem = 0, f"no {', '.join(sorted(IMAGE_SUFFIXES))} files"
        for path in self.images():
            try:
                image = decode_image(path.read_bytes(), self.max_pixels)
            except (OSError, SourceFault) as exc:
                problem = f"{path.name}: {exc}"
                self._report(path, str(exc))
                continue
            yield image, shown / self.fps
            shown += 1
        if not shown:
            raise SourceFault(f"no usable image in {self.path} ({problem})")
        return shown / self.fps
