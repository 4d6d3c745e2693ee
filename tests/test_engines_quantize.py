"""INT8 static quantisation: calibration sees training tiles only, and the INT8 model opens through
load_engine and counts close to its FP32 source on held-out images."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx

from crowdstream.engines.counting import count_frames
from crowdstream.engines.engine import load_engine
from crowdstream.engines.frames import (
    HOLDOUT_EVERY,
    read_frame,
    shanghaitech_images,
    shanghaitech_part,
    spread,
)
from crowdstream.engines.models import DEFAULT_MODEL
from crowdstream.engines.quantize import calibration_tiles, quantize_model
from tests.data_paths import DATA_ROOT as ROOT
from tests.data_paths import needs_data

pytestmark = needs_data


def image_number(path: Path) -> int:
    return int(re.findall(r"\d+", path.stem)[-1])


def test_the_held_out_images_never_reach_calibration() -> None:
    train, validation = shanghaitech_images(ROOT, "train"), shanghaitech_images(ROOT, "validation")
    assert not set(train) & set(validation)
    assert sorted(train + validation) == sorted(shanghaitech_images(ROOT, "all"))
    # ShanghaiTech numbers its images IMG_1 … IMG_n, so the n-th in natural order is IMG_n
    assert all(image_number(p) % HOLDOUT_EVERY == 0 for p in validation)
    assert not any(image_number(p) % HOLDOUT_EVERY == 0 for p in train)
    parts = [len(list((shanghaitech_part(part, ROOT) / "images").glob("*.jpg"))) for part in ("A", "B")]
    assert len(validation) == sum(n // HOLDOUT_EVERY for n in parts)


def test_the_split_is_the_one_training_uses() -> None:
    from crowdstream.training.annotations import split_items

    for part in ("A", "B"):
        train, validation = split_items(shanghaitech_part(part, ROOT))
        folder = f"part_{part}"
        assert [p for p in shanghaitech_images(ROOT, "validation") if folder in p.parts] == validation
        assert [p for p in shanghaitech_images(ROOT, "train") if folder in p.parts] == train


def test_calibration_tiles_are_model_inputs() -> None:
    tiles = calibration_tiles(ROOT, images=3)
    assert tiles.dtype == np.float32 and tiles.shape[1:] == (3, 224, 224) and len(tiles) >= 3
    assert -3 < tiles.mean() < 3 and tiles.std() > 0.3  # standardised pixels, not raw 0..255


def test_int8_model_counts_close_to_fp32(tmp_path: Path) -> None:
    out = quantize_model(DEFAULT_MODEL, tmp_path / "int8.onnx", calibration_tiles(ROOT, images=4))
    graph = onnx.load(str(out)).graph
    operators = [n.op_type for n in graph.node]
    assert operators.count("QLinearConv") > 20
    tail = operators[len(operators) - operators[::-1].index("Conv") - 1 :]
    assert not any(op.startswith("QLinear") for op in tail)  # density, gain and count stay FP32
    frames = [read_frame(p) for p in spread(shanghaitech_images(ROOT, "validation"), 4)]
    fp32 = np.array([r.count for r in count_frames(load_engine(DEFAULT_MODEL, threads=2), frames)])
    int8_engine = load_engine(out, threads=2)
    int8 = np.array([r.count for r in count_frames(int8_engine, frames)])
    assert int8_engine.backend == "onnxruntime"
    assert np.all(np.isfinite(int8)) and fp32.sum() > 0
    assert abs(int8.sum() - fp32.sum()) / fp32.sum() < 0.15
