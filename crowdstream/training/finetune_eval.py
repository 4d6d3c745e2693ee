"""The two scores a fine-tune is judged by, both through ONNX Runtime and the stream's own tiling: the MAE
on the camera's held-out snapshots, and the MAE per ShanghaiTech part on the project's fixed hold-out (every
HOLDOUT_EVERY-th training image), so an operator sees whether general accuracy dropped.

Without a data root the "standard hold-out" is the hold-out crops shipped with the package
(training.replay_set). The base model's figure is cached by the model file's sha256, the tiling and the
images: it is the same for every fine-tune of the shipped model and costs a minute or more on a busy CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from crowdstream.engines.engine import load_engine
from crowdstream.engines.engine_cache import file_sha256
from crowdstream.engines.frames import HOLDOUT_EVERY, shanghaitech_part
from crowdstream.training.annotations import Sample
from crowdstream.training.evaluate import dataset_samples, evaluate
from crowdstream.training.metrics import mae
from crowdstream.training.replay_set import PARTS, shipped_samples

log = logging.getLogger(__name__)


def snapshot_mae(model: Path, samples: list[Sample], tiles: str, threads: int) -> tuple[float, list[float]]:
    """(MAE, per-snapshot predicted counts) of a model on annotated snapshots."""
    engine = load_engine(model, "onnxruntime", threads=threads)
    result = evaluate(engine, samples=samples, tiles=tiles, progress=False)
    return mae(result.predicted, result.truth), [round(p, 2) for p in result.predicted]


def standard_parts(data_root: Path | None) -> dict[str, Path]:
    """The ShanghaiTech parts present under the data root (none without one: a service machine)."""
    if data_root is None:
        return {}
    return {
        part: shanghaitech_part(part, data_root)
        for part in PARTS
        if shanghaitech_part(part, data_root).is_dir()
    }


def baseline_cache() -> Path:
    """$XDG_CACHE_HOME/crowdstream/standard-holdout.json (else ~/.cache/...)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "crowdstream" / "standard-holdout.json"


def standard_sets(data_root: Path | None, limit: int | None) -> tuple[str, dict[str, list[Sample]]]:
    """(what it is, {part: samples}) of the general check: the every-HOLDOUT_EVERY-th hold-out of each
    ShanghaiTech part under the data root (at most `limit` images a part), or without one the hold-out
    crops that ship with the package (training.replay_set), so every install judges general accuracy."""
    parts = standard_parts(data_root)
    if parts:
        sets = {part: dataset_samples(root, limit, HOLDOUT_EVERY) for part, root in sorted(parts.items())}
        return f"ShanghaiTech every-{HOLDOUT_EVERY}th hold-out under {data_root}", sets
    shipped = {part: samples[:limit] for part, samples in shipped_samples("check").items()}
    return "the hold-out crops shipped with crowdstream (training/replay/check)", shipped


def standard_mae(
    model: Path,
    sets: dict[str, list[Sample]],
    tiles: str,
    threads: int,
    cached: bool = False,
    tick: Callable[[float], None] = lambda _fraction: None,
) -> dict[str, float]:
    """{part: MAE} of `model` on the general check's sets (standard_sets); `cached` reads and writes the
    figure in baseline_cache(), keyed by the model file, the tiling and the images."""
    names = {part: [str(s.image_path) for s in samples] for part, samples in sorted(sets.items())}
    key = f"{file_sha256(model)}:{tiles}:{hashlib.sha256(json.dumps(names).encode()).hexdigest()[:16]}"
    store = _read_cache() if cached else {}
    if key in store:
        log.info("standard hold-out MAE of %s from the cache", model)
        return store[key]["mae"]
    engine = load_engine(model, "onnxruntime", threads=threads)
    figures = {}
    for index, (part, samples) in enumerate(sorted(sets.items())):
        result = evaluate(engine, samples=samples, tiles=tiles, progress=False)
        figures[part] = mae(result.predicted, result.truth)
        tick((index + 1) / len(sets))
    if cached:
        store[key] = {"mae": figures}
        _write_cache(store)
    return figures


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
