"""`crowdstream count` on real images and video, and on bad files: one clear line and exit 2, never a
traceback; huge images are decoded within a memory bound."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from crowdstream.engines.counting import DENSITY_SCALE, count_frames
from crowdstream.engines.engine import load_engine
from crowdstream.engines.spec import DEFAULT_TILES
from crowdstream.stream.count import MAX_PIXELS
from crowdstream.stream.sources import DEMO_CLIP
from tests.data_paths import PART_B, needs_data


def crowdstream(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crowdstream", *args], capture_output=True, text=True, timeout=180
    )


@needs_data
def test_image_count_matches_the_engine_and_writes_the_overlay(tmp_path) -> None:
    image = PART_B / "images" / "IMG_1.jpg"
    output = tmp_path / "overlay.png"
    result = crowdstream("count", str(image), "-o", str(output), "--json")
    assert result.returncode == 0, result.stderr
    frame = cv2.imread(str(image))
    expected = count_frames(load_engine(), [frame], DEFAULT_TILES, DENSITY_SCALE)[0].count  # the default
    assert json.loads(result.stdout)["count"] == pytest.approx(expected, abs=0.01)
    one_pass = crowdstream("count", str(image), "--tiles", "auto", "--json")
    expected = count_frames(load_engine(), [frame], "auto", DENSITY_SCALE)[0].count
    assert json.loads(one_pass.stdout)["count"] == pytest.approx(expected, abs=0.01)
    overlay, original = cv2.imread(str(output)), cv2.imread(str(image))
    assert overlay.shape == original.shape and not np.array_equal(overlay, original)


def test_video_count_samples_frames_and_writes_an_overlay_video(tmp_path) -> None:
    """`demo` names the bundled clip, as it does for `serve`."""
    output = tmp_path / "overlay.mp4"
    result = crowdstream("count", "demo", "--fps", "0.25", "-o", str(output), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["path"] == str(DEMO_CLIP)
    times = [frame["time"] for frame in report["counts"]]
    assert report["frames"] == len(times) >= 6 and times[:3] == [0.0, 4.0, 8.0]
    assert report["max"] >= report["mean"] > 0
    video = cv2.VideoCapture(str(output))
    frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = video.read()
    video.release()
    assert ok and frame.shape == (720, 1280, 3) and frames == len(times)
    flagged = [f for f in report["counts"] if f["uncertain"]]
    assert (
        flagged
        and all(f["reason"] for f in flagged)
        and not any(f["reason"] for f in report["counts"] if not f["uncertain"])
    )
    text = crowdstream("count", "demo", "--fps", "0.25").stdout
    assert all(f"(uncertain: {f['reason']})" in text for f in flagged)  # the text says what the JSON says
    assert report["uncertain_frames"] == len(flagged)
    assert report["uncertain"] == (len(flagged) / len(times) > 0.4)  # over 40 %: as a camera in the service
    verdict = ": the camera's count is uncertain, teach it" if report["uncertain"] else ""
    assert text.rstrip().endswith(f"{len(flagged)} of them uncertain{verdict}")


def test_png_with_alpha_and_a_one_pixel_image_are_counted(tmp_path) -> None:
    rgba = np.zeros((300, 400, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 120, 50
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    cv2.imwrite(str(tmp_path / "dot.png"), np.full((1, 1, 3), 200, np.uint8))
    for name in ("alpha.png", "dot.png"):
        result = crowdstream("count", str(tmp_path / name), "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["count"] >= 0


def test_a_bmp_is_counted_like_the_same_picture_as_a_png(tmp_path) -> None:
    capture = cv2.VideoCapture(str(DEMO_CLIP))
    ok, frame = capture.read()
    capture.release()
    assert ok
    counts = []
    for name in ("crowd.png", "crowd.bmp"):
        cv2.imwrite(str(tmp_path / name), frame)
        result = crowdstream("count", str(tmp_path / name), "--json")
        assert result.returncode == 0, result.stderr
        counts.append(json.loads(result.stdout)["count"])
    assert counts[0] == counts[1] > 5  # the same pixels, read as an image both times (a crowd)


def test_huge_image_is_decoded_reduced_within_the_memory_bound(tmp_path) -> None:
    huge = tmp_path / "huge.jpg"
    cv2.imwrite(str(huge), np.full((12000, 12000, 3), 90, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    output = tmp_path / "huge-overlay.jpg"
    result = crowdstream("count", str(huge), "-o", str(output))
    assert result.returncode == 0, result.stderr
    height, width = cv2.imread(str(output)).shape[:2]
    assert width * height <= MAX_PIXELS and width == height


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jpg", b"", "empty file"),
        ("cut.jpg", "truncated-jpeg", "truncated JPEG"),
        ("text.png", b"not an image at all", "not a JPEG, PNG or BMP image"),
        ("cut.mp4", "truncated-video", "not a readable image or video"),
        ("noise.mp4", bytes(range(256)) * 64, "not a readable image or video"),
    ],
)
def test_bad_files_give_one_line_and_exit_2(tmp_path, name, content, message) -> None:
    path = tmp_path / name
    if content == "truncated-jpeg":
        cv2.imwrite(str(tmp_path / "whole.jpg"), np.full((200, 200, 3), 70, np.uint8))
        content = (tmp_path / "whole.jpg").read_bytes()[:600]
    elif content == "truncated-video":
        content = DEMO_CLIP.read_bytes()[:4000]
    path.write_bytes(content)
    result = crowdstream("count", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("count", "/no/such/file.jpg"), "no such file"),
        (("count", str(DEMO_CLIP), "-o", "/tmp/overlay.png"), "the overlay of a video is written as .mp4"),
        (("count", str(DEMO_CLIP), "--fps", "0"), "--fps must be greater than 0"),
        (("count", str(DEMO_CLIP), "--model", str(DEMO_CLIP)), "not a usable ONNX model"),
        (("count", str(DEMO_CLIP), "-o", "/no/folder/out.mp4"), "does not exist"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args, message) -> None:
    result = crowdstream(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr


def test_help_has_an_example() -> None:
    for command in (("serve",), ("count",), ("bench", "stream"), ("bench", "soak")):
        result = crowdstream(*command, "--help")
        assert result.returncode == 0 and "example" in result.stdout
