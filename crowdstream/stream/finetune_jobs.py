"""Fine-tuning a camera's model from the page, as a background job the service only watches.

`crowdstream finetune` runs as a separate process, under `nice`, with its threads and address space
capped (stream.finetune_config), so counting never waits for it and a crash of the training never
takes the service down. The job reads the JSON lines the command prints (`start`, `progress`,
`done`, `error`), keeps the newest state per camera (a reloaded page asks for it) and announces every
change to the event stream. One job per camera at a time; cancelling ends the process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.finetune_config import FinetuneConfig

log = logging.getLogger(__name__)

FINETUNE = (sys.executable, "-m", "crowdstream.cli", "finetune")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
STOP_GRACE_S = 5.0
STDERR_KEPT = 20


class JobError(CrowdstreamError):
    """A job that cannot start (one already runs, no snapshots) or be cancelled."""


@dataclass(frozen=True)
class JobState:
    """What the page shows of a camera's fine-tuning: running, done, failed or cancelled, how far,
    and when done, the new model and its report."""

    EVENT: ClassVar[str] = "finetune"

    camera: str
    state: str  # running, done, failed, cancelled
    started: float
    base_model: str
    output: str
    quick: bool
    fraction: float = 0.0
    stage: str = "starting"
    step: int | None = None
    loss: float | None = None
    eta_s: float | None = None
    message: str | None = None
    report: dict | None = None
    finished: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "state": self.state,
            "started": round(self.started, 3),
            "finished": None if self.finished is None else round(self.finished, 3),
            "base_model": self.base_model,
            "model": self.output,
            "quick": self.quick,
            "fraction": round(self.fraction, 4),
            "stage": self.stage,
            "step": self.step,
            "loss": self.loss,
            "eta_s": self.eta_s,
            "message": self.message,
            "report": self.report,
        }


def apply_event(state: JobState, event: Any) -> JobState:
    """The state after one line of the command's output (unknown lines change nothing)."""
    if not isinstance(event, dict):
        return state
    kind = event.get("event")
    if kind == "progress":
        return replace(
            state,
            fraction=_number(event.get("fraction"), state.fraction),
            stage=str(event.get("stage") or state.stage),
            step=event.get("step") if isinstance(event.get("step"), int) else state.step,
            loss=_number(event.get("loss"), state.loss),
            eta_s=_number(event.get("eta_s"), state.eta_s),
        )
    if kind == "start":
        return replace(state, stage="training")
    if kind == "error":
        return replace(state, message=str(event.get("message") or "fine-tuning failed"))
    if kind == "done":
        return replace(state, report=_read_report(event.get("report")), fraction=1.0, stage="done")
    return state


def _number(value: Any, default: float | None) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _read_report(path: Any) -> dict | None:
    try:
        report = json.loads(Path(str(path)).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    return report if isinstance(report, dict) else None


def finetune_command(
    config: FinetuneConfig, dataset: Path, base_model: str, output: Path, quick: bool
) -> list[str]:
    """The `crowdstream finetune` arguments of a normal or a quick run."""
    minutes = config.quick_minutes if quick else config.minutes
    limit = config.quick_standard_limit if quick else config.standard_limit
    arguments = [str(dataset), "--from", base_model, "-o", str(output), "--minutes", f"{minutes:g}"]
    arguments += ["--progress", "jsonl", "--threads", str(config.threads)]
    # already niced and capped from outside (`bounded`): the command adds nothing of its own
    arguments += ["--nice", "0", "--max-memory-gb", "0"]
    if limit is not None:
        arguments += ["--standard-limit", str(limit)]
    if quick:
        arguments += ["--lr", f"{config.quick_lr:g}"]
    if quick and config.quick_steps is not None:
        arguments += ["--steps", str(config.quick_steps)]
    if config.holdout is not None:
        arguments += ["--holdout", str(config.holdout)]
    if config.int8:
        arguments.append("--int8")
    return arguments


def bounded(config: FinetuneConfig, program: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The program under `nice` (and `prlimit` for the memory cap), and an environment with every
    math library held to `config.threads` threads."""
    prefix = ["nice", "-n", str(config.nice)]
    if config.memory_mb is not None:
        prefix = ["prlimit", f"--as={config.memory_mb * 1024 * 1024}", *prefix]
    environment = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(config.threads))}
    return [*prefix, *program], environment


@dataclass
class _Running:
    process: asyncio.subprocess.Process
    task: asyncio.Task | None = None
    stderr: list[str] = field(default_factory=list)
    cancelled: bool = False


class FinetuneJobs:
    """The fine-tuning jobs of one service; `announce` hands every new state to the event stream."""

    def __init__(
        self,
        config: FinetuneConfig,
        announce: Callable[[JobState], None],
        program: Sequence[str] = FINETUNE,
    ) -> None:
        self.config, self.announce, self.program = config, announce, list(program)
        self.states: dict[str, JobState] = {}
        self._running: dict[str, _Running] = {}

    def state(self, camera: str) -> JobState | None:
        return self.states.get(camera)

    async def start(self, camera: str, base_model: str, quick: bool) -> JobState:
        """Start fine-tuning `camera`'s snapshots from `base_model`; refused while one runs."""
        if camera in self._running:
            raise JobError(f"camera {camera} is already being fine-tuned: wait for it or cancel it")
        dataset = self.config.dataset_dir(camera)
        if not dataset.is_dir() or not any(dataset.glob("*.json")):
            raise JobError(f"camera {camera} has no snapshots yet: take and correct some first")
        models = self.config.models_dir(camera)
        try:
            models.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobError(f"cannot write the model to {models}: {exc.strerror or exc}") from None
        output = models / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.onnx"
        arguments = finetune_command(self.config, dataset, base_model, output, quick)
        command, environment = bounded(self.config, [*self.program, *arguments])
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=environment,
                start_new_session=True,  # its own process group: cancel ends its children too
            )
        except OSError as exc:  # nice or prlimit missing, the folder not writable
            raise JobError(f"cannot start {command[0]}: {exc.strerror or exc}") from None
        state = JobState(camera, "running", time.time(), base_model, str(output), quick)
        self._set(state)
        running = self._running[camera] = _Running(process)
        # the command's stderr goes to <model>.log, for a post-mortem
        running.task = asyncio.create_task(self._follow(camera, running, output.with_suffix(".log")))
        log.info("fine-tuning started", extra={"camera": camera, "model": str(output), "quick": quick})
        return state

    async def cancel(self, camera: str, grace: float = STOP_GRACE_S) -> JobState:
        """SIGTERM the job's process group, SIGKILL it after `grace` seconds."""
        running = self._running.get(camera)
        if running is None:
            raise JobError(f"camera {camera} has no fine-tuning running")
        running.cancelled = True
        _signal_group(running.process, signal.SIGTERM)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(running.task), grace)
        if not running.task.done():
            _signal_group(running.process, signal.SIGKILL)
            await running.task
        return self.states[camera]

    async def close(self, grace: float = STOP_GRACE_S) -> None:
        """Cancel every running job (the service stops)."""
        for camera in list(self._running):
            with contextlib.suppress(JobError):
                await self.cancel(camera, grace)

    async def _follow(self, camera: str, running: _Running, log_path: Path) -> None:
        stderr = asyncio.create_task(self._keep_stderr(running, log_path))
        try:
            async for line in running.process.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # not a progress line
                self._set(apply_event(self.states[camera], event))
            code = await running.process.wait()
            await stderr
        finally:
            self._running.pop(camera, None)
        self._set(self._finished(self.states[camera], code, running))

    @staticmethod
    async def _keep_stderr(running: _Running, log_path: Path) -> None:
        with open(log_path, "ab") as log_file:
            async for line in running.process.stderr:
                log_file.write(line)
                text = line.decode(errors="replace").strip()
                if text:
                    running.stderr = [*running.stderr[-STDERR_KEPT + 1 :], text]

    @staticmethod
    def _finished(state: JobState, code: int, running: _Running) -> JobState:
        now = time.time()
        if running.cancelled:
            return replace(state, state="cancelled", message="cancelled", finished=now)
        if code == 0 and state.report is not None:
            return replace(state, state="done", finished=now)
        message = state.message or (running.stderr[-1] if running.stderr else None)
        if code == 0:
            message = message or "the command ended without a report"
        return replace(state, state="failed", message=message or f"exit status {code}", finished=now)

    def _set(self, state: JobState) -> None:
        self.states[state.camera] = state
        self.announce(state)


def _signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
