"""A camera's snapshot folder: the finetune contract's files, written atomically, and marks checked
against the frame with one-line errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from crowdstream.stream.snapshots import (
    CameraSnapshots,
    SnapshotError,
    SnapshotExists,
    SnapshotNotFound,
    parse_marks,
)


@pytest.fixture
def frame() -> np.ndarray:
    """Smooth colour ramps (JPEG keeps them within a few levels)."""
    rows, cols = np.mgrid[:90, :160]
    return np.stack([cols * 1.5, rows * 2.5, (rows + cols)], axis=2).astype(np.uint8)


def test_a_snapshot_is_a_jpeg_and_a_json_in_the_contract_format(tmp_path, frame) -> None:
    folder = tmp_path / "finetune" / "gate"
    snapshots = CameraSnapshots(folder, "gate")
    taken = snapshots.take(frame, np.array([[10.0, 20.0], [150.5, 80.25]]), "default", seq=42)
    assert taken.stem.endswith("-42") and taken.size == (160, 90)
    record = json.loads((folder / f"{taken.stem}.json").read_text())
    assert set(record) == {"points", "empty_regions", "camera", "taken", "model", "corrected"}
    assert record["corrected"] == ""  # the model's marks, not yet saved by the operator
    assert record["points"] == [[10.0, 20.0], [150.5, 80.2]] and record["empty_regions"] == []
    assert (record["camera"], record["model"]) == ("gate", "default")
    assert record["taken"].endswith("+00:00")
    image = cv2.imread(str(folder / f"{taken.stem}.jpg"))
    assert image.shape == frame.shape and np.abs(image.astype(int) - frame).mean() < 3  # JPEG of the frame
    assert sorted(p.name for p in folder.iterdir()) == [
        f"{taken.stem}.jpg",
        f"{taken.stem}.json",
    ]  # no temporaries
    with pytest.raises(SnapshotExists, match="frame 42 is already a snapshot"):
        snapshots.take(frame, np.zeros((0, 2)), "default", seq=42)


def test_corrected_marks_replace_the_predicted_ones(tmp_path, frame) -> None:
    snapshots = CameraSnapshots(tmp_path, "gate")
    stem = snapshots.take(frame, np.array([[10.0, 20.0]]), "default", seq=1).stem
    saved = snapshots.save_marks(
        stem, {"points": [[1, 2], [3, 4], [100, 50]], "empty_regions": [[110, 0, 160, 40]]}
    )
    again = snapshots.read(stem)
    assert again.marks.points.tolist() == [[1, 2], [3, 4], [100, 50]] == saved.marks.points.tolist()
    assert again.marks.empty_regions.tolist() == [[110, 0, 160, 40]]
    assert (again.taken, again.model) == (saved.taken, "default")
    assert again.corrected == saved.corrected and again.corrected.endswith("+00:00")  # when it was saved
    assert [s.stem for s in snapshots.list()] == [stem]
    snapshots.delete(stem)
    assert snapshots.list() == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("marks", "message"),
    [
        ({"points": [[170, 10]]}, r"head at \(170, 10\) is outside the 160x90 frame"),
        ({"points": [[-1, 10]]}, "outside the 160x90 frame"),
        ({"points": [[1, 2, 3]]}, "points must be a list of 2-number lists"),
        ({"points": "many"}, "points must be a list of 2-number lists"),
        ({"points": [[1, float("nan")]]}, "points must be finite numbers"),
        ({"points": [[True, 10]]}, "points must be a list of 2-number lists"),
        ({"points": [["5", 10]]}, "points must be a list of 2-number lists"),
        ({"points": [[10**400, 10]]}, "points must be a list of 2-number lists"),
        (
            {"points": [], "empty_regions": [[0, 0, 10, None]]},
            "empty_regions must be a list of 4-number lists",
        ),
        ({"points": [], "empty_regions": [[50, 10, 40, 20]]}, "must have x0 < x1"),
        ({"points": [], "empty_regions": [[0, 0, 200, 20]]}, "inside the 160x90 frame"),
        ({"points": [[45, 15]], "empty_regions": [[40, 10, 50, 20]]}, "lies in the empty region"),
        ({"heads": []}, 'send {"points"'),
        ([1, 2], 'send {"points"'),
    ],
)
def test_bad_marks_are_one_line_errors(marks: object, message: str) -> None:
    with pytest.raises(SnapshotError, match=message) as caught:
        parse_marks(marks, (160, 90))
    assert "\n" not in str(caught.value)


def test_unknown_and_malformed_names_are_not_found(tmp_path) -> None:
    snapshots = CameraSnapshots(tmp_path, "gate")
    for stem in ("20260101T000000-1", "../../etc/passwd", "x"):
        with pytest.raises(SnapshotNotFound):
            snapshots.read(stem)
    with pytest.raises(SnapshotNotFound):
        snapshots.image_path("../secret")
