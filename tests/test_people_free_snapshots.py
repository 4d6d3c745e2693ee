"""The people-free snapshot folder for the negatives fine-tune: the added texture families, the folder in the
finetune contract (no heads, the whole image "nobody here"), and crops only from training-split images with
no annotated head inside."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crowdstream.engines.frames import HOLDOUT_EVERY, shanghaitech_part
from crowdstream.training.annotations import list_dataset, load_any
from crowdstream.training.negatives import GENERATORS, MORE_GENERATORS
from crowdstream.training.people_free_snapshots import (
    BODY_MIN_HEADS,
    SIDE,
    body_window,
    link_training_images,
    write_body_crops,
    write_head_free_crops,
    write_textures,
)
from crowdstream.training.snapshots import read_snapshots
from tests.data_paths import DATA_ROOT, needs_data


@pytest.mark.parametrize("family", MORE_GENERATORS, ids=lambda f: f.__name__)
def test_added_families_are_deterministic_textured_images(family) -> None:
    first = family(np.random.default_rng(3), 96)
    assert first.shape == (96, 96, 3) and first.dtype == np.uint8
    assert np.array_equal(first, family(np.random.default_rng(3), 96))
    assert not np.array_equal(first, family(np.random.default_rng(4), 96))
    assert first.std() > 5  # a texture, not a flat colour


def test_textures_form_a_snapshot_folder_with_nobody_anywhere(tmp_path) -> None:
    written = write_textures(tmp_path, variants=1, zooms=(2.0,))
    families = GENERATORS + MORE_GENERATORS
    assert len(written) == len(families)
    samples = read_snapshots(tmp_path)  # the finetune's own strict reader
    assert [s.image_path.stem for s in samples] == sorted(f"tex-{f.__name__}-00-z2" for f in families)
    for sample in samples:
        assert sample.count == 0 and (sample.width, sample.height) == (SIDE, SIDE)
        assert sample.empty_regions.tolist() == [[0, 0, SIDE, SIDE]]
    again = write_textures(tmp_path / "again", variants=1, zooms=(2.0,))
    assert [p.read_text() for p in again] == [p.read_text() for p in written]
    assert (tmp_path / "again" / "tex-sand-00-z2.jpg").read_bytes() == (
        tmp_path / "tex-sand-00-z2.jpg"
    ).read_bytes()


def training_image_heads(part: str, name: str) -> np.ndarray:
    """The annotated heads of a crop's source image, after checking it is not an every-5th hold-out image."""
    items = list_dataset(shanghaitech_part(part, DATA_ROOT))
    index = [item.name for item in items].index(name) + 1  # counted from 1, as holdout_split does
    assert index % HOLDOUT_EVERY != 0  # never an every-5th hold-out image
    return load_any(items[index - 1]).points


@needs_data
def test_crops_come_from_training_images_and_hold_no_annotated_head(tmp_path) -> None:
    written = write_head_free_crops(tmp_path, per_part=4, data_root=DATA_ROOT)
    assert len(written) >= 4
    for path in written:
        record = json.loads(path.read_text())
        part, rest = record["source"].split("/", 1)
        name, box = rest.split(" ", 1)
        y0, x0, h, w = json.loads(box.replace("(", "[").replace(")", "]"))
        heads = training_image_heads(part, name)
        inside = (heads[:, 0] >= x0) & (heads[:, 0] < x0 + w) & (heads[:, 1] >= y0) & (heads[:, 1] < y0 + h)
        assert not inside.any() and record["points"] == [] and record["empty_regions"] == [[0, 0, w, h]]


def test_the_body_window_is_the_clear_one_right_under_the_most_heads() -> None:
    # three people side by side at the top of a 600×600 image, one alone further down on the right
    heads = np.array([[60.0, 40.0], [120.0, 40.0], [180.0, 40.0], [520.0, 300.0]])
    x0, y0, under = body_window(heads, 600, 600, 192)
    assert under == 3 and x0 <= 60 and x0 + 192 > 180  # all three above it
    assert 40 + 64 <= y0 <= 40 + 192  # clear of the heads by the check's margin, within a window of them
    inside = (heads[:, 0] >= x0 - 64) & (heads[:, 0] < x0 + 256) & (heads[:, 1] >= y0 - 64)
    assert not (inside & (heads[:, 1] < y0 + 256)).any()
    assert body_window(heads[3:], 600, 600, 192) is None  # one head is not a crowd's bodies (BODY_MIN_HEADS)
    assert BODY_MIN_HEADS == 2


@needs_data
def test_body_crops_are_training_images_under_heads_with_no_head_inside(tmp_path) -> None:
    written = write_body_crops(tmp_path, per_part=6, data_root=DATA_ROOT)
    assert len(written) >= 4 and all(path.name.startswith("body-") for path in written)
    for path in written:
        record = json.loads(path.read_text())
        part, rest = record["source"].split("/", 1)
        name, rest = rest.split(" ", 1)
        box, under = rest.split(" under ")
        y0, x0, h, w = json.loads(box.replace("(", "[").replace(")", "]"))
        heads = training_image_heads(part, name)
        inside = (heads[:, 0] >= x0) & (heads[:, 0] < x0 + w) & (heads[:, 1] >= y0) & (heads[:, 1] < y0 + h)
        above = (heads[:, 0] >= x0) & (heads[:, 0] < x0 + w) & (heads[:, 1] < y0) & (heads[:, 1] >= y0 - h)
        assert not inside.any() and above.sum() == int(under.split()[0]) >= BODY_MIN_HEADS
        assert record["points"] == [] and record["empty_regions"] == [[0, 0, w, h]]


def test_linked_training_images_carry_their_heads_and_never_a_holdout_image(tmp_path) -> None:
    written = link_training_images(tmp_path, data_root=DATA_ROOT)
    samples = {s.image_path.stem: s for s in read_snapshots(tmp_path)}  # the finetune's own strict reader
    for part in ("A", "B"):
        items = list_dataset(shanghaitech_part(part, DATA_ROOT))
        trained = [item for index, item in enumerate(items, start=1) if index % HOLDOUT_EVERY != 0]
        stems = sorted(s for s in samples if s.startswith(f"train-{part}-"))
        assert stems == sorted(f"train-{part}-{item.stem}" for item in trained)
        original = load_any(trained[0])
        linked = samples[f"train-{part}-{trained[0].stem}"]
        assert np.allclose(linked.points, original.points, atol=0.01)
        assert (tmp_path / f"{linked.image_path.name}").resolve() == original.image_path.resolve()
    assert len(written) == len(samples)
