"""INT8 static quantisation with ONNX Runtime, calibrated on training tiles.

Calibration tiles are cut from ShanghaiTech training images (never the held-out ones, see engines.frames.HOLDOUT_EVERY) by
engines.preprocess, so the activation ranges are those the stream will feed. The graph is first
pre-processed (pads folded into convolutions by engines.onnx_passes, then shape inference and
fusions, as ONNX Runtime recommends), then quantised with
per-channel INT8 weights and UINT8 activations in operator form (QLinearConv): on the CPUs here that
ran 2-4× faster than the QDQ form, whose Q/DQ pairs around the explicit `Pad` of every "same"-padded
convolution keep ONNX Runtime from fusing them (docs/engines.md). The tail from the last convolution
on (density map, its gain, the count) stays FP32: density values are tiny, and a uint8 grid there
would round sparse crowds away.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from crowdstream.engines.errors import EngineError
from crowdstream.engines.frames import read_frame, shanghaitech_images, spread
from crowdstream.engines.preprocess import prepare_frame
from crowdstream.engines.spec import SPEC


@contextmanager
def quiet_root_logger():
    """onnxruntime.quantization logs one INFO line per rescaled weight channel (hundreds) on the root
    logger; hold INFO back while it runs."""
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def calibration_tiles(data_root: Path, images: int = 64) -> np.ndarray:
    """Model-input tiles of `images` training images spread over both parts: (N, 3, 224, 224)."""
    if images < 1:
        raise EngineError(f"need at least 1 calibration image, got {images}")
    paths = spread(shanghaitech_images(data_root, "train"), images)
    return np.concatenate([prepare_frame(read_frame(p))[0] for p in paths])


class TileReader:
    """onnxruntime.quantization's CalibrationDataReader protocol over a tile array, a few tiles a call."""

    def __init__(self, tiles: np.ndarray, batch: int = 8):
        self.tiles, self.batch = tiles, batch
        self._batches: Iterator[dict[str, np.ndarray]] = self._iterate()

    def _iterate(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.tiles), self.batch):
            yield {SPEC.input_name: self.tiles[start : start + self.batch]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = self._iterate()


def output_tail(model_path: Path) -> list[str]:
    """Names of the last Conv node and every node after it (ONNX graphs are topologically sorted)."""
    import onnx

    nodes = list(onnx.load(str(model_path)).graph.node)
    convolutions = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    return [n.name for n in nodes[convolutions[-1] :]] if convolutions else []


def quantize_model(
    source: Path,
    out: Path,
    tiles: np.ndarray,
    progress: Callable[[str], None] = lambda _message: None,
) -> Path:
    """Write an INT8 (QOperator) copy of `source` calibrated on `tiles` (MinMax activation ranges);
    returns `out`. ONNX Runtime's histogram calibrators (entropy, percentile) keep every activation of every
    calibration tile in memory: with 443 tiles of this model the percentile run was killed for memory on a
    24 GiB machine after six minutes, so MinMax is the one method offered.

    Weights are 7-bit (`reduce_range`): x86 CPUs without VNNI (AVX2 and plain AVX-512; one of this
    project's CI hosts exposes AVX2 only) add uint8 × int8 products in pairs into int16 and saturate, so an
    8-bit copy counted differently from one host to the next — on that host the stage-3 model's 8-bit
    copy's first convolution was off by up to the whole uint8 range, and its people-free `check negatives`
    read 0.91 per 512² (worst 29.6) where its 7-bit copy reads 0.24 (worst 10.1) and its FP32 source 0.27
    (13.5)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from crowdstream.engines.onnx_engine import OnnxEngine
    from crowdstream.engines.onnx_passes import optimised_model

    OnnxEngine(Path(source))  # the source must meet the contract before we spend minutes on it
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, quiet_root_logger():
        folded, prepared = Path(scratch) / "folded.onnx", Path(scratch) / "prepared.onnx"
        progress("pre-processing the graph (pads folded into convolutions, shape inference, fusions)")
        folded.write_bytes(optimised_model(Path(source)))
        quant_pre_process(str(folded), str(prepared), skip_symbolic_shape=True)
        progress(f"calibrating on {len(tiles)} training tiles (min/max ranges)")
        quantize_static(
            str(prepared),
            str(out),
            TileReader(tiles),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=output_tail(prepared),
            reduce_range=True,
        )
    OnnxEngine(out)  # refuse to leave behind a file the engines cannot open
    return out
