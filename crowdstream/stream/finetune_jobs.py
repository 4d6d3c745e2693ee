"""Fine-tuning a camera's model from the page, as a background job the service only watches.

`crowdstream finetune` runs as a separate process, under `nice`, with its threads and address space
capped (stream.finetune_config), so counting never waits for it and a crash of the training never
takes the service down. The job reads the JSON lines the command prints (`start`, `progress`,
`done`, `error`), keeps the newest state per camera (a reloaded page asks for it) and announces every
change to the event stream.

`FinetuneJobs` is the one manager of these jobs. A job is registered before anything is awaited, so
of many starts sent together exactly one gets it: one job per camera, and at most `max_running` in
the whole service (the refusal names the job that runs). Each job has its own output name, reserved
by creating its log; its state is its own, so a job that ends late never overwrites a newer job's.
Cancelling signals the job's whole process group (SIGTERM, then SIGKILL after a grace period) and
returns once it is gone; cancelling a job that already ended just returns its state. When the
command ends, whatever it left behind in its group is killed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from crowdstream.engines.data_root import DATA_ROOT_ENV
from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.finetune_config import FinetuneConfig

log = logging.getLogger(__name__)

FINETUNE = (sys.executable, "-m", "crowdstream.cli", "finetune")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
STOP_GRACE_S = 5.0
MIN_SNAPSHOTS = 2
"""`crowdstream finetune` trains on one snapshot and judges the result by another, so it refuses fewer;
the page refuses them before a process starts."""
STDERR_KEPT = 20


class JobError(CrowdstreamError):
    """A job that cannot start (one already runs for the camera, no snapshots) or be cancelled."""


class JobLimit(JobError):
    """The service already runs as many jobs as `finetune.max_running` allows (for other cameras)."""


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
    """A finite number from the command's line (JSON answers and events cannot carry NaN or Infinity)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


def _read_report(path: Any) -> dict | None:
    """The command's report; a NaN or Infinity in it (a diverged run) reads as null, since the page and
    the API pass the report on as JSON."""
    try:
        report = json.loads(Path(str(path)).read_text(encoding="utf-8"), parse_constant=lambda _: None)
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


@dataclass(eq=False)
class _Job:
    """One job from its registration to its end; `ended` is set once its process is reaped."""

    state: JobState
    process: asyncio.subprocess.Process | None = None
    stderr: list[str] = field(default_factory=list)
    cancelled: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None

    @property
    def camera(self) -> str:
        return self.state.camera

    def since(self) -> str:
        """When it started and where it is, for a refusal: "started 09:12:03, training"."""
        return f"started {time.strftime('%H:%M:%S', time.localtime(self.state.started))}, {self.state.stage}"


class FinetuneJobs:
    """The fine-tuning jobs of one service; `announce` hands every new state to the event stream."""

    def __init__(
        self,
        config: FinetuneConfig,
        announce: Callable[[JobState], None],
        program: Sequence[str] = FINETUNE,
        data_root: Path | None = None,
    ) -> None:
        self.config, self.announce, self.program = config, announce, list(program)
        self.data_root = data_root  # the service config's; the command finds $CROWDSTREAM_DATA first
        self._newest: dict[str, _Job] = {}  # per camera, running or ended
        self._running: dict[str, _Job] = {}  # per camera, registered and not yet ended

    def state(self, camera: str) -> JobState | None:
        job = self._newest.get(camera)
        return None if job is None else job.state

    @property
    def running(self) -> list[str]:
        """The cameras being fine-tuned now."""
        return list(self._running)

    async def start(self, camera: str, base_model: str, quick: bool) -> JobState:
        """Start fine-tuning `camera`'s snapshots from `base_model`; refused (JobError) while the camera
        has a job and (JobLimit) while the service runs `max_running` jobs."""
        job = self._register(camera, base_model, quick)  # nothing awaited before: no two starts get in
        output = Path(job.state.output)
        dataset = self.config.dataset_dir(camera)
        arguments = finetune_command(self.config, dataset, base_model, output, quick)
        command, environment = bounded(self.config, [*self.program, *arguments])
        if self.data_root is not None:
            environment.setdefault(DATA_ROOT_ENV, str(self.data_root))
        try:
            job.process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=environment,
                start_new_session=True,  # its own process group: cancel ends its children too
            )
        except OSError as exc:  # nice or prlimit missing
            self._end(job, replace(job.state, state="failed", message=f"cannot start {command[0]}: {exc}"))
            raise JobError(f"cannot start {command[0]}: {exc.strerror or exc}") from None
        if job.cancelled:  # cancelled while it was being started
            _signal_group(job.process, signal.SIGKILL)
        job.task = asyncio.create_task(self._follow(job, output.with_suffix(".log")))
        log.info("fine-tuning started", extra={"camera": camera, "model": str(output), "quick": quick})
        return job.state

    def _register(self, camera: str, base_model: str, quick: bool) -> _Job:
        if camera in self._running:
            raise JobError(
                f"camera {camera} is already being fine-tuned ({self._running[camera].since()}): "
                "wait for it or cancel it"
            )
        if len(self._running) >= self.config.max_running:
            jobs = "; ".join(f"camera {job.camera} ({job.since()})" for job in self._running.values())
            raise JobLimit(
                f"the service runs at most {self.config.max_running} fine-tuning job(s) at once "
                f"(finetune.max_running), running now: {jobs}; wait for it or cancel it"
            )
        dataset = self.config.dataset_dir(camera)
        snapshots = len(list(dataset.glob("*.json"))) if dataset.is_dir() else 0
        if not snapshots:
            raise JobError(f"camera {camera} has no snapshots yet: take and correct some first")
        if snapshots < MIN_SNAPSHOTS:
            raise JobError(
                f"camera {camera} has {snapshots} snapshot: fine-tuning needs at least {MIN_SNAPSHOTS}, one to "
                "train on and one to judge the result by; take and correct another"
            )
        output = self._reserve_output(camera)
        job = _Job(JobState(camera, "running", time.time(), base_model, str(output), quick))
        self._running[camera] = self._newest[camera] = job
        self.announce(job.state)
        return job

    def _reserve_output(self, camera: str) -> Path:
        """A model path no earlier job used: the UTC time, with -2, -3, … when taken; its log is
        created at once, so the name stays taken."""
        models = self.config.models_dir(camera)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        try:
            models.mkdir(parents=True, exist_ok=True)
            for attempt in range(1, 1000):
                output = models / (stamp if attempt == 1 else f"{stamp}-{attempt}")
                with contextlib.suppress(FileExistsError):
                    output.with_suffix(".log").touch(exist_ok=False)
                    if not any(output.with_suffix(end).exists() for end in (".onnx", ".report.json")):
                        return output.with_suffix(".onnx")
        except OSError as exc:
            raise JobError(f"cannot write the model to {models}: {exc.strerror or exc}") from None
        raise JobError(f"cannot find a free model name in {models}")

    async def cancel(self, camera: str, grace: float = STOP_GRACE_S) -> JobState:
        """End the camera's job: SIGTERM its process group, SIGKILL after `grace` seconds; returns once
        it has ended. A job that already ended is left as it is (its state is returned)."""
        job = self._newest.get(camera)
        if job is None:
            raise JobError(f"camera {camera} has no fine-tuning running")
        if job.ended.is_set():
            return job.state
        job.cancelled = True
        if job.process is not None:
            _signal_group(job.process, signal.SIGTERM)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(job.ended.wait()), grace)
        if not job.ended.is_set():
            if job.process is not None:
                _signal_group(job.process, signal.SIGKILL)
            await job.ended.wait()
        return job.state

    async def close(self, grace: float = STOP_GRACE_S) -> None:
        """Cancel every running job (the service stops)."""
        await asyncio.gather(*(self.cancel(camera, grace) for camera in list(self._running)))

    async def _follow(self, job: _Job, log_path: Path) -> None:
        process = job.process
        code = None
        try:
            stderr = asyncio.create_task(self._keep_stderr(job, log_path))
            async for line in process.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # not a progress line
                self._set(job, apply_event(job.state, event))
            code = await process.wait()
            await stderr
        finally:
            _signal_group(process, signal.SIGKILL)  # anything the command left running in its group
            try:
                if code is None:  # this task was cancelled (the loop is closing): reap what it can
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                else:
                    await group_ended(process.pid)
            finally:
                self._end(job, self._finished(job.state, code, job))

    @staticmethod
    async def _keep_stderr(job: _Job, log_path: Path) -> None:
        with open(log_path, "ab") as log_file:
            async for line in job.process.stderr:
                log_file.write(line)
                text = line.decode(errors="replace").strip()
                if text:
                    job.stderr = [*job.stderr[-STDERR_KEPT + 1 :], text]

    @staticmethod
    def _finished(state: JobState, code: int | None, job: _Job) -> JobState:
        now = time.time()
        if job.cancelled:
            return replace(state, state="cancelled", message="cancelled", finished=now)
        if code == 0 and state.report is not None:
            return replace(state, state="done", finished=now)
        message = state.message or (job.stderr[-1] if job.stderr else None)
        if code == 0:
            message = message or "the command ended without a report"
        return replace(state, state="failed", message=message or f"exit status {code}", finished=now)

    def _end(self, job: _Job, state: JobState) -> None:
        if self._running.get(job.camera) is job:
            del self._running[job.camera]
        self._set(job, state)
        job.ended.set()

    def _set(self, job: _Job, state: JobState) -> None:
        """A job's new state, announced while it is its camera's newest job."""
        job.state = state
        if self._newest.get(job.camera) is job:
            self.announce(state)


def _signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


async def group_ended(group: int, timeout: float = STOP_GRACE_S) -> None:
    """Wait (at most `timeout` seconds) until no process of `group` still runs.

    A signal is delivered when its target is next scheduled, so on a busy machine a killed child can
    still run for a moment after `killpg` returns; a job counts as ended only once its whole group
    has. A zombie (dead, waiting for its new parent to reap it) no longer runs."""
    deadline = time.monotonic() + timeout
    while group_running(group) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def group_running(group: int) -> bool:
    """Whether a process of `group` is alive and not a zombie, read from /proc (Linux); False where
    there is no /proc to read."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended while we looked
        if fields and fields[0] not in "ZX" and int(fields[2]) == group:
            return True
    return False
