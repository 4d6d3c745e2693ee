"""The command line as a user meets it: help everywhere, real runs, one-line errors."""

import argparse
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from crowdstream.cli import build_parser
from tests.conftest import run_cli, subcommands
from tests.data_paths import PART_B, needs_data


def all_commands(parser: argparse.ArgumentParser, prefix=()):
    for name, sub in subcommands(parser).items():
        yield (*prefix, name), sub
        yield from all_commands(sub, (*prefix, name))


def test_top_level_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("train", "eval", "density", "export", "bench"):
        assert command in result.stdout


def test_every_subcommand_has_help_with_an_example():
    commands = list(all_commands(build_parser()))
    assert len(commands) >= 6
    for path, sub in commands:
        text = sub.format_help()
        assert "example" in text, f"crowdstream {' '.join(path)} --help shows no example"


@needs_data
def test_density_draws_the_heatmap_on_the_heads(tmp_path):
    image = PART_B / "images" / "IMG_1.jpg"
    out = tmp_path / "density.png"
    result = run_cli("density", str(image), str(PART_B / "ground-truth" / "GT_IMG_1.mat"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "233 people" in result.stdout
    from crowdstream.training.annotations import load_shanghaitech

    picture, original = cv2.imread(str(out)).astype(int), cv2.imread(str(image)).astype(int)
    changed = np.abs(picture - original).sum(axis=2) > 30
    points = load_shanghaitech(image).points.astype(int)
    on_heads = changed[points[:, 1], points[:, 0]].mean()
    assert on_heads > 0.8  # the heat sits on the annotated heads...
    from scipy.spatial import cKDTree

    from crowdstream.engines.labels import label_box, label_scale

    ys, xs = np.nonzero(~np.zeros_like(changed))
    far = cKDTree(points).query(np.stack([xs, ys], 1))[0].reshape(changed.shape) > 95  # beyond 3 × max sigma
    width, height = label_box("233 people (adaptive)", label_scale(picture))
    far[: 12 + height, : 12 + width] = False  # the count label, drawn as the live overlay draws its labels
    assert far.any() and not changed[far].any()  # ...and nowhere far from a head


@needs_data
def test_eval_prints_valid_json_with_the_metrics():
    result = run_cli("eval", str(PART_B), "--limit", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["images"] == 2
    for key in ("mae", "rmse", "nae", "game", "seconds_per_image", "buckets"):
        assert key in report
    assert set(report["game"]) == {"0", "1", "2", "3"}
    assert report["game"]["0"] == pytest.approx(report["mae"], rel=1e-3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("eval", "/no/such/folder"), "/no/such/folder: no such data set folder"),
        (
            ("eval", "/tmp", "--tiles", "banana"),
            "--tiles: tiles must be 'adaptive', 'auto' or 'RxC' such as '2x2', got 'banana'",
        ),
        (
            ("density", "/no/image.jpg", "/no/points.json", "-o", "/tmp/x.png"),
            "/no/points.json: annotation not found",
        ),
        (
            ("eval", "/tmp", "--model", "/no/model.onnx"),
            "/no/model.onnx: model file not found (give a path or one of: default, crowd-lite0, crowd-lite0-int8)",
        ),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr == f"crowdstream: error: {message}\n"


def test_a_reader_that_stops_early_gets_no_traceback():
    """`crowdstream engine info | head -0`: stdout is a pipe nobody reads any more."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to write_end now fails with EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "crowdstream.cli", "engine", "info"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
