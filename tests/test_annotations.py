"""Annotation readers on real ShanghaiTech files, NWPU-style and plain formats, and bad input."""

import json
import logging

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowdstream.training.annotations import (
    AnnotationError,
    iter_dataset,
    load_nwpu,
    load_points_file,
    load_shanghaitech,
    read_shanghaitech_points,
)
from tests.data_paths import PART_A, PART_B, needs_data


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "frame.jpg"
    cv2.imwrite(str(path), np.full((40, 60, 3), 128, np.uint8))
    return path


@needs_data
def test_shanghaitech_sample_from_real_data():
    sample = load_shanghaitech(PART_B / "images" / "IMG_1.jpg")
    assert (sample.width, sample.height) == (1024, 768)
    assert sample.count == 233 and sample.points.shape == (233, 2) and sample.points.dtype == np.float32
    assert (sample.points >= 0).all() and (sample.points[:, 0] < 1024).all()


@needs_data
def test_dataset_iterates_in_natural_order():
    names = [s.image_path.name for _, s in zip(range(11), iter_dataset(PART_A), strict=False)]
    assert names[:3] == ["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg"] and names[9] == "IMG_10.jpg"


@needs_data
def test_nwpu_json_built_from_real_points(tmp_path):
    points = read_shanghaitech_points(PART_B / "ground-truth" / "GT_IMG_2.mat")
    (tmp_path / "0002.json").write_text(
        json.dumps({"img_id": "IMG_2.jpg", "human_num": len(points), "points": points.tolist()})
    )
    sample = load_nwpu(tmp_path / "0002.json", PART_B / "images")
    assert sample.count == len(points) and not sample.notes


def test_human_num_disagreeing_is_a_warning_and_the_points_win(tmp_path, image, caplog):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"img_id": image.name, "human_num": 5, "points": [[1, 1], [2, 2]]}))
    with caplog.at_level(logging.WARNING):
        sample = load_nwpu(path)
    assert sample.count == 2 and "declares 5" in caplog.text and str(path) in caplog.text


def test_points_just_outside_are_clipped_far_ones_dropped_and_counted(tmp_path, image):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([[-0.5, 3], [60.8, 39.9], [100, 5], [10, -30], [5, 5]]))
    sample = load_points_file(path, image)
    assert sample.count == 3 and sample.dropped == 2
    assert sample.points[:, 0].min() >= 0 and sample.points[:, 0].max() < 60


def test_nan_coordinates_are_an_error_naming_the_file(tmp_path, image):
    path = tmp_path / "nan.csv"
    path.write_text("x,y\n1,2\nnan,3\n")
    with pytest.raises(AnnotationError, match="nan.csv.*NaN"):
        load_points_file(path, image)


def test_csv_with_and_without_header(tmp_path, image):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n3,4\n")
    (tmp_path / "b.csv").write_text("1,2\n3,4\n")
    assert load_points_file(tmp_path / "a.csv", image).count == 2
    assert load_points_file(tmp_path / "b.csv", image).count == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", b"{not json", "not valid JSON"),
        ("bad.mat", b"MATLAB garbage", "not a readable ShanghaiTech .mat"),
        ("bad.csv", b"1,2\nthree,four\n", "x,y"),
        ("shape.json", b'{"points": [[1, 2, 3], "x"]}', "points must be"),
    ],
)
def test_unreadable_annotations_name_the_file(tmp_path, image, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AnnotationError, match=message) as error:
        load_points_file(path, image)
    assert name in str(error.value)


def test_missing_image_and_missing_annotation(tmp_path, image):
    (tmp_path / "a.json").write_text("[[1, 1]]")
    with pytest.raises(AnnotationError, match="image not found"):
        load_points_file(tmp_path / "a.json", tmp_path / "nope.jpg")
    with pytest.raises(AnnotationError, match="annotation not found"):
        load_points_file(tmp_path / "nope.json", image)


def test_truncated_and_empty_images_are_refused(tmp_path):
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), np.full((40, 60, 3), 90, np.uint8))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:20])
    (tmp_path / "a.json").write_text("[]")
    for name in ("empty.jpg", "cut.jpg"):
        with pytest.raises(AnnotationError, match="not a readable image"):
            load_points_file(tmp_path / "a.json", tmp_path / name)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=5)),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    suffix=st.sampled_from([".json", ".csv", ".mat"]),
)
def test_fuzzed_annotation_files_give_a_sample_or_a_clear_error(tmp_path, image, payload, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(payload)
    try:
        sample = load_points_file(path, image)
    except AnnotationError as error:
        assert "fuzz" in str(error)
    else:
        assert sample.points.ndim == 2 and np.isfinite(sample.points).all()
