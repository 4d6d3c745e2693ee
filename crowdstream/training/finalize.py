"""After training: fit the count head on the best checkpoint, record the decision, export ONNX."""

from __future__ import annotations

import json
from pathlib import Path

from crowdstream.engines.errors import ConfigError
from crowdstream.training.calibrate import calibrate_count_head
from crowdstream.training.config import TrainConfig
from crowdstream.training.export import export_checkpoint
from crowdstream.training.models import model_from_state, read_checkpoint
from crowdstream.training.trainer import Trainer, _atomic_save, collapsed


def finalize_run(config: TrainConfig) -> dict:
    """The selected checkpoint (best.pt, or last.pt with `select: last`) → count head fitted on training tiles
    and judged on validation → <out>/crowd-lite0.onnx."""
    out = Path(config.out)
    best = out / f"{config.select}.pt"
    if not best.is_file():
        raise ConfigError(f"{best}: no checkpoint to finalise (train first, or check --out and select)")
    state = read_checkpoint(best)
    if collapsed(state["validation"]):
        raise ConfigError(
            f"{best}: this checkpoint counts about 0 people on every validation image (the training collapsed); "
            f"not exported — train again with a lower --lr than {state['config']['lr']:g}"
        )
    model = model_from_state(state)
    train, validation = Trainer.load_data_for(config)
    report = calibrate_count_head(model, train, validation, config.tiles)
    state["count_head"] = report
    _atomic_save(state, best)
    info = export_checkpoint(best, out / "crowd-lite0.onnx")
    summary = {
        "selected": config.select,
        "epoch": state["epoch"] + 1,
        "validation": state["validation"],
        "count_head": report,
        "export": info,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
