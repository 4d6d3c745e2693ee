"""Which model each camera counts with, and switching it while the service runs.

A camera's `model:` (a shipped name or a model file) falls back to `engine.model`. Each distinct model
file is loaded once and shared by every camera that names it, so the worker batches those cameras
together; with one model for all (the usual case) nothing changes from a single-engine service.
Switching loads the new model in a thread, then, through the settings owner (stream.camera_settings,
one edit of any camera at a time), writes `model:` into the config file (comments kept, atomic,
previous version kept: stream.zone_file) and only then points the camera at it, from its next frame
on. A fine-tuned model may be switched to only when its report says it is better.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crowdstream.engines.engine import runtime_model
from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.models import NAMED_MODELS
from crowdstream.engines.spec import Engine
from crowdstream.stream.camera_settings import CameraSettings
from crowdstream.stream.config import CameraConfig, ServiceConfig
from crowdstream.stream.worker import Worker
from crowdstream.stream.zone_file import write_model


class ModelChoiceError(CrowdstreamError):
    """A model the page may not switch a camera to (the message is one line)."""


@dataclass(frozen=True)
class SwitchedModel:
    camera: str
    model: str
    saved_to: str | None
    note: str | None

    def as_dict(self) -> dict:
        return {"camera": self.camera, "model": self.model, "saved_to": self.saved_to, "note": self.note}


def report_of(model: Path) -> dict | None:
    """A fine-tuned model's report (`<model>.report.json`), or None when it has none readable."""
    try:
        report = json.loads(model.with_suffix(".report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def check_choice(config: ServiceConfig, camera_id: str, model: str | None) -> None:
    """Allow the engine's model (None), a shipped model, or a model fine-tuned for this camera whose
    report says it beats the camera's current one; anything else (any other path) is refused."""
    if model is None or model in NAMED_MODELS:
        return
    path = Path(model)
    if path.parent != config.finetune.models_dir(camera_id) or path.suffix != ".onnx" or not path.is_file():
        raise ModelChoiceError(
            f"model must be one of {', '.join(NAMED_MODELS)}, null (engine.model) or a model fine-tuned "
            f"for camera {camera_id}"
        )
    report = report_of(path)
    if report is None or report.get("better") is not True:
        raise ModelChoiceError(f"{path.name} did not beat the camera's model on its held-out snapshots")


class CameraModels:
    """Loads each camera's model once into the worker and switches cameras between models."""

    def __init__(self, settings: CameraSettings, worker: Worker, load: Callable[[str], Engine]) -> None:
        self.settings, self.worker, self.load = settings, worker, load
        self.config = settings.config
        self._loading = asyncio.Lock()  # one model file loaded at a time, never twice at once

    def load_configured(self) -> None:
        """Load the models cameras name in the config (before they are opened)."""
        for camera in self.config.cameras:
            self._attach(camera.model, self._engine_for(camera.model))

    def _engine_for(self, model: str | None) -> Engine | None:
        """The engine to count `model` with: None for the default engine's file, an engine already
        loaded for the same file, else a newly loaded one (slow: call it in a thread)."""
        if model is None:
            return None
        path, _ = runtime_model(model, self.config.engine.backend)
        if path == self.worker.engine.model_path:
            return None
        loaded = (engine for engine in list(self.worker.engines.values()) if engine.model_path == path)
        return next(loaded, None) or self.load(model)

    def _attach(self, model: str | None, engine: Engine | None) -> str | None:
        """The worker's name for `model` (None: the default engine)."""
        if engine is None:
            return None
        self.worker.add_engine(model, engine)
        return model

    async def use(self, camera_id: str, model: str | None) -> SwitchedModel:
        """Switch a camera to `model` (checked by `check_choice` first), save it, count with it."""
        check_choice(self.config, camera_id, model)
        async with self._loading:
            engine = await asyncio.to_thread(self._engine_for, model)

        def update(camera: CameraConfig) -> CameraConfig:
            return camera.model_copy(update={"model": model})

        def write(path: Path, camera: CameraConfig, check: Callable[[Path], object]) -> Path:
            return write_model(path, camera.id, camera.model, check)

        def apply(camera: CameraConfig) -> None:
            self.worker.set_model(camera.id, self._attach(model, engine))
            self.worker.drop_unused_engines()

        saved = await self.settings.change(camera_id, update, write, apply)
        return SwitchedModel(camera_id, self.config.model_of(saved.camera), saved.saved_to, saved.note)
