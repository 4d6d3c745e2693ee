"""The `finetune` section of the service configuration: where each camera's snapshots and fine-tuned
models are kept, and how hard a fine-tuning run started from the page may work.

Fine-tuning runs as its own process (`crowdstream finetune`), under `nice`, with its threads and its
address space capped, so counting never waits for it; these values are those caps.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_DATA_DIR = Path("~/.local/share/crowdstream")


class FinetuneConfig(BaseModel):
    """Snapshots and fine-tuning from the page ("Correct this camera")."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    data_dir: Path = Field(
        DEFAULT_DATA_DIR,
        description="folder for each camera's snapshots (finetune/<camera>/) and models (models/<camera>/)",
    )
    minutes: float = Field(10.0, gt=0, le=24 * 60, description="training time of a normal run")
    standard_limit: int | None = Field(
        None, ge=1, description="standard hold-out images a normal run scores (null: all of them)"
    )
    quick_minutes: float = Field(1.0, gt=0, le=60, description="training time of a quick trial run")
    quick_standard_limit: int = Field(10, ge=1, description="standard hold-out images of a quick run")
    quick_steps: int | None = Field(
        None, ge=1, description="training steps of a quick run (null: as many as its minutes allow)"
    )
    quick_lr: float = Field(
        1e-4,
        gt=0,
        le=0.01,
        description="peak learning rate of a quick run: a few dozen steps at the normal 3e-4 move the model"
        " away from the standard hold-out before they help the camera",
    )
    holdout: int | None = Field(
        None, ge=1, description="snapshots held out to score the run (null: its default)"
    )
    int8: bool = Field(False, description="also write an INT8 model, like the shipped one")
    threads: int = Field(1, ge=1, le=64, description="CPU threads the fine-tuning process may use")
    nice: int = Field(10, ge=0, le=19, description="the process's niceness: counting always goes first")
    memory_mb: int | None = Field(
        8192, ge=256, description="address-space cap of the process in MiB (null: none)"
    )
    max_running: int = Field(
        1,
        ge=1,
        le=64,
        description="fine-tuning jobs the whole service runs at once (each takes `threads` cores and up to"
        " `memory_mb`); more starts are refused until one ends",
    )

    @field_validator("data_dir")
    @classmethod
    def _folder(cls, folder: Path) -> Path:
        """Expanded and absolute, so a job started now writes where the page reads later."""
        folder = folder.expanduser().absolute()
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder} exists and is not a folder")
        return folder

    def dataset_dir(self, camera_id: str) -> Path:
        """The camera's snapshots: `<stem>.jpg` + `<stem>.json`, what `crowdstream finetune` reads."""
        return self.data_dir / "finetune" / camera_id

    def models_dir(self, camera_id: str) -> Path:
        """The camera's fine-tuned models, their reports and logs (never inside the data set)."""
        return self.data_dir / "models" / camera_id
