"""`crowdstream eval` (hold-out choice, buckets, NAE, interval, zoom) and `crowdstream check` as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.io import loadmat

from crowdstream.engines.data_root import DATA_ROOT_ENV
from crowdstream.training.demo_clip import IMAGES
from tests.conftest import run_cli
from tests.data_paths import DATA_ROOT, PART_B, needs_data


def annotated(name: str) -> np.ndarray:
    """Head points straight from the ShanghaiTech .mat file."""
    return loadmat(str(PART_B / "ground-truth" / f"GT_{name}.mat"))["image_info"][0, 0][0, 0][0]


@needs_data
def test_eval_every_5th_with_zoom_reports_buckets_nae_interval_and_zoom_rows():
    result = run_cli("eval", str(PART_B), "--every", "5", "--limit", "2", "--zoom", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["holdout_every"] == 5
    assert [row["name"] for row in report["per_image"]] == ["IMG_5.jpg", "IMG_10.jpg"]
    heads = [annotated("IMG_5"), annotated("IMG_10")]
    assert [row["truth"] for row in report["per_image"]] == [len(h) for h in heads]
    errors = [abs(row["predicted"] - row["truth"]) for row in report["per_image"]]
    assert report["mae"] == pytest.approx(np.mean(errors))
    low, high = report["mae_ci95"]
    assert min(errors) - 1e-9 <= low <= report["mae"] <= high <= max(errors) + 1e-9
    assert "nae_0_50" in report and "bias_pct" in report
    for bucket in report["buckets"].values():
        assert {"images", "mae", "bias", "bias_pct"} <= set(bucket)
    assert sum(b["images"] for b in report["buckets"].values()) == 2
    rows = {row["crop"]: row for row in report["zoom"]}
    assert set(rows) == {"centre", "crowd"} and {row["zoom"] for row in rows.values()} == {2.0}
    for row in rows.values():
        assert row["images"] == 2 and row["mae_ratio"] == pytest.approx(row["mae"] / report["mae"])
        assert {"nae", "bias", "bias_pct", "mae_ci95"} <= set(row)
    # the 2x centre window of a 1024×768 image: x 256..768, y 192..576
    inside = [((h[:, 0] >= 256) & (h[:, 0] < 768) & (h[:, 1] >= 192) & (h[:, 1] < 576)).sum() for h in heads]
    assert rows["centre"]["truth_mean"] == pytest.approx(np.mean(inside))


@needs_data
def test_eval_holdout_defaults_to_every_5th_and_prints_the_table():
    result = run_cli("eval", str(PART_B), "--holdout", "--limit", "1", "--zoom", "0.5", "1.5")
    assert result.returncode == 0, result.stderr
    for text in (
        "hold-out every 5th",
        "95 % CI",
        "NAE on images with at most 50 people",
        "bias %",
        "1.5x",
        "0.5x",
    ):
        assert text in result.stdout, text


@needs_data
def test_eval_against_a_baseline_pairs_the_same_images():
    result = run_cli(
        "eval",
        str(PART_B),
        "--holdout",
        "--limit",
        "3",
        "--baseline",
        "crowd-lite0",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    alone = json.loads(
        run_cli("eval", str(PART_B), "--holdout", "--limit", "3", "--model", "crowd-lite0", "--json").stdout
    )
    base = report["baseline"]
    assert base["model"].endswith("crowd-lite0.onnx") and base["mae"] == pytest.approx(alone["mae"])
    assert base["mae_delta"] == pytest.approx(report["mae"] - alone["mae"])
    low, high = base["mae_delta_ci95"]
    changes = [
        abs(new["predicted"] - new["truth"]) - abs(old["predicted"] - old["truth"])
        for new, old in zip(report["per_image"], alone["per_image"], strict=True)
    ]
    assert min(changes) - 1e-9 <= low <= base["mae_delta"] <= high <= max(changes) + 1e-9
    assert base["images_better"] == sum(c < 0 for c in changes)
    assert base["images_worse"] == sum(c > 0 for c in changes)
    same = run_cli("eval", str(PART_B), "--holdout", "--limit", "2", "--baseline", "default")
    assert "change +0.00 (paired 95 % CI +0.00 to +0.00); 0 images better, 0 worse" in same.stdout


@needs_data
def test_eval_pictures_the_images_counted_worst(tmp_path):
    folder = tmp_path / "worst"
    result = run_cli(
        "eval", str(PART_B), "--holdout", "--limit", "4", "--pictures", str(folder), "--worst", "2", "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_error = sorted(report["per_image"], key=lambda row: -abs(row["predicted"] - row["truth"]))
    expected = [
        folder / f"{rank:02d}-{Path(row['name']).stem}.jpg" for rank, row in enumerate(by_error[:2], 1)
    ]
    assert report["pictures"] == [str(path) for path in expected]
    for path, row in zip(expected, by_error, strict=False):
        picture = cv2.imread(str(path))
        image = cv2.imread(str(PART_B / "images" / row["name"]))
        height, width = image.shape[:2]
        assert picture.shape[1] == width and picture.shape[0] > height  # the image over its caption strip
        assert np.abs(picture[:height].astype(int) - image).mean() > 1  # heat and head rings drawn on it
    text = run_cli(
        "eval", str(PART_B), "--holdout", "--limit", "4", "--pictures", str(folder), "--worst", "1"
    )
    assert f"the 1 images counted worst, as pictures:\n    {expected[0]}" in text.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("eval", str(PART_B), "--zoom", "0"), "--zoom: zoom must be between 0.1 and 10 and not 1"),
        (("eval", str(PART_B), "--zoom", "1"), "--zoom: zoom must be between 0.1 and 10 and not 1"),
        (("eval", str(PART_B), "--every", "1"), "--every must be at least 2"),
        (("eval", "/no/such/folder", "--holdout"), "no such data set folder"),
        (("eval", str(PART_B), "--limit", "0"), "--limit must be at least 1"),
        (("eval", str(PART_B), "--baseline", "/no/model.onnx"), "/no/model.onnx"),
        (("check", "negatives", "--every", "0"), "--every must be at least 2"),
        (("check", "negatives", "--save", "/no/such/folder/x"), "--save: /no/such/folder does not exist"),
        (("check", "demo", "--clip", "/no/clip.mp4"), "no such clip"),
        (("check", "demo", "--images", "/tmp"), "the clip's source images are missing"),
        (("check", "demo", "--per-shot", "0"), "--per-shot must be at least 1"),
        (("eval", str(PART_B), "--pictures", "/tmp", "--worst", "0"), "--worst must be at least 1"),
    ],
)
def test_mistakes_give_one_line_errors(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crowdstream: error:"), result.stderr
    assert message in result.stderr


@needs_data
def test_mistakes_about_the_data_give_one_line_errors():
    test_mistakes_give_one_line_errors(
        ("eval", str(PART_B), "--every", "100000"), "no annotated images to score"
    )
    annotation = PART_B / "ground-truth" / "GT_IMG_1.mat"
    test_mistakes_give_one_line_errors(("check", "negatives", "--save", str(annotation)), "is a file")
    test_mistakes_give_one_line_errors(
        ("eval", str(PART_B), "--limit", "1", "--pictures", str(annotation / "worst")),
        "--pictures: cannot make",
    )
    test_mistakes_give_one_line_errors(
        ("check", "negatives", "--data-root", str(PART_B)), f"not found under the data root {PART_B}"
    )


@needs_data
def test_check_negatives_reports_every_image_and_the_portraits():
    pytest.importorskip("skimage")
    result = run_cli("check", "negatives", "--json", "--data-root", str(DATA_ROOT))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["left_out"] == []
    names = {row["name"]: row for row in report["images"]}
    assert names["skimage:grass"]["width"] == 512 and names["skimage:grass"]["people"] == 0
    sources = report["people_free"]["by_source"]
    assert set(sources) == {"package", "synthetic", "holdout-crop"}
    assert report["people_free"]["all"]["images"] == sum(s["images"] for s in sources.values())
    assert sources["synthetic"]["images"] == 12 and sources["holdout-crop"]["images"] > 10
    assert {p["name"] for p in report["portraits"]} >= {"skimage:astronaut", "skimage:camera"}
    assert isinstance(report["people_free"]["all"]["target_met"], bool)
    flags = [row["uncertain"] for row in report["images"]]
    assert {type(flag) for flag in flags} == {bool}
    assert report["uncertainty"]["flagged"] == sum(flags)
    within_one = [abs(row["count"] - row["people"]) <= 1.0 for row in report["images"]]  # truths 0 and 1
    assert report["uncertainty"]["small_errors"] == sum(within_one)


@needs_data
def test_check_demo_scores_each_shot_against_its_window():
    result = run_cli("check", "demo", "--per-shot", "1", "--json", "--data-root", str(DATA_ROOT))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [s["image"] for s in report["shots"]] == list(IMAGES)
    # one frame per shot: each shot's first un-faded frame; shot 1's is frame 0, which shows rows
    # 115.2..691.2 of IMG_6 (full width)
    heads = annotated("IMG_6")
    assert report["shots"][0]["truth_mean"] == ((heads[:, 1] >= 115.2) & (heads[:, 1] < 691.2)).sum()
    assert report["all"]["images"] == 8


def without_data_root(*args: str) -> subprocess.CompletedProcess:
    """A command run as on a machine where no data root is named."""
    environment = {k: v for k, v in os.environ.items() if k != DATA_ROOT_ENV}
    command = [sys.executable, "-m", "crowdstream", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)


def test_check_negatives_without_a_data_root_says_what_it_left_out():
    pytest.importorskip("skimage")
    result = without_data_root("check", "negatives", "--tiles", "1x1")
    assert result.returncode == 0, result.stderr
    assert "target (mean < 1 per 512², none above 3) over package, synthetic:" in result.stdout
    assert "left out: holdout-crop: no data root" in result.stdout
    assert "holdout-crop  " not in result.stdout  # no crop was counted


@pytest.mark.parametrize(
    "command",
    [
        ("check", "demo"),
        ("bench", "engine", "--batch", "1"),
        ("engine", "quantize"),
        ("train", "--limit", "1"),
        ("eval", "B"),
    ],
)
def test_commands_that_need_data_name_the_three_ways_to_give_it(command):
    result = without_data_root(*command)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--data-root DIR" in lines[0] and DATA_ROOT_ENV in lines[0], result.stderr
    assert "data_root in the config" in lines[0]


@needs_data
def test_eval_names_a_shanghaitech_part_under_the_data_root():
    result = run_cli("eval", "B", "--limit", "1", "--tiles", "1x1", "--json", "--data-root", str(DATA_ROOT))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dataset"] == str(PART_B) and [row["name"] for row in report["per_image"]] == ["IMG_1.jpg"]
