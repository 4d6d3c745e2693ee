"""The two scores a fine-tune is judged by, both through ONNX Runtime and the stream's own tiling: the MAE
on the camera's held-out snapshots, and the MAE per ShanghaiTech part on the project's fixed hold-out (every
HOLDOUT_EVERY-th training image), so an operator sees whether general accuracy dropped.

The base model's standard figure is cached by the model file's sha256, the tiling and the image limit: it
is the same for every fine-tune of the shipped model and costs a minute or more on a busy CPU.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from crowdstream.engines.engine import load_engine
from crowdstream.engines.engine_cache import file_sha256
from crowdstream.engines.frames import DEFAULT_DATA_ROOT, HOLDOUT_EVERY, shanghaitech_part
from crowdstream.training.annotations import Sample
from crowdstream.training.evaluate import dataset_samples, evaluate
from crowdstream.training.metrics import mae

log = logging.getLogger(__name__)
PARTS = ("A", "B")


def snapshot_mae(model: Path, samples: list[Sample], tiles: str, threads: int) -> tuple[float, list[float]]:
    """(MAE, per-snapshot predicted counts) of a model on annotated snapshots."""
    engine = load_engine(model, "onnxruntime", threads=threads)
    result = evaluate(engine, samples=samples, tiles=tiles, progress=False)
    return mae(result.predicted, result.truth), [round(p, 2) for p in result.predicted]


def standard_parts(data_root: Path = DEFAULT_DATA_ROOT) -> dict[str, Path]:
    """The ShanghaiTech parts present under the data root (none on a service machine without the data)."""
    return {
        part: shanghaitech_part(part, data_root)
        for part in PARTS
        if shanghaitech_part(part, data_root).is_dir()
    }


def baseline_cache() -> Path:
    """$XDG_CACHE_HOME/crowdstream/standard-holdout.json (else ~/.cache/...)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "crowdstream" / "standard-holdout.json"


def standard_mae(
    model: Path,
    limit: int | None,
    tiles: str,
    threads: int,
    cached: bool = False,
    tick: Callable[[float], None] = lambda _fraction: None,
    data_root: Path = DEFAULT_DATA_ROOT,
) -> tuple[dict[str, float], int]:
    """({part: MAE}, images scored) on the every-HOLDOUT_EVERY-th hold-out, at most `limit` images per part;
    `cached` reads and writes the figure in baseline_cache()."""
    parts = standard_parts(data_root)
    key = f"{file_sha256(model)}:{tiles}:{limit}:{HOLDOUT_EVERY}:{sorted(parts)}"
    store = _read_cache() if cached else {}
    if key in store:
        log.info("standard hold-out MAE of %s from the cache", model)
        return store[key]["mae"], store[key]["images"]
    engine = load_engine(model, "onnxruntime", threads=threads)
    figures, images = {}, 0
    for index, (part, root) in enumerate(sorted(parts.items())):
        samples = dataset_samples(root, limit, HOLDOUT_EVERY)
        result = evaluate(engine, samples=samples, tiles=tiles, progress=False)
        figures[part] = mae(result.predicted, result.truth)
        images += len(samples)
        tick((index + 1) / len(parts))
    if cached:
        store[key] = {"mae": figures, "images": images}
        _write_cache(store)
    return figures, images


def _read_cache() -> dict:
    try:
        return json.loads(baseline_cache().read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write_cache(store: dict) -> None:
    path = baseline_cache()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(store, indent=1))
        tmp.replace(path)
    except OSError as exc:  # a read-only home only costs the next run a minute
        log.warning("could not cache the standard hold-out figure: %s", exc)
