"""Fine-tuning jobs as the service runs them: a separate process under nice and prlimit with bounded
threads, its JSON lines turned into states and events, failures as one line, cancel, one per camera.
The program here is a small stand-in that speaks the `crowdstream finetune --progress jsonl`
contract (the real command is run end to end in tests/test_browser_teach.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crowdstream.stream.finetune_config import FinetuneConfig
from crowdstream.stream.finetune_jobs import FinetuneJobs, JobError, JobLimit, JobState, group_running
from tests.conftest import process_gone, until

STAND_IN = textwrap.dedent(
    """
    import json, os, resource, sys, time
    mode, dataset, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    out = args[args.index("-o") + 1]
    seen = {"argv": sys.argv[2:], "threads": os.environ.get("OMP_NUM_THREADS"), "nice": os.nice(0),
            "memory": resource.getrlimit(resource.RLIMIT_AS)[0]}
    open(out + ".seen.json", "w").write(json.dumps(seen))
    say = lambda **event: print(json.dumps(event), flush=True)
    say(event="start")
    print("a line that is not JSON", flush=True)
    if mode == "slow":
        time.sleep(60)
    if mode == "family":  # a child in the job's process group, as training's data loaders would be
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open(out + ".child", "w").write(str(child.pid))
        time.sleep(60)
    for step in (1, 2):
        say(event="progress", fraction=step / 2, step=step, loss=1.0 / step, eta_s=2 - step, stage="training")
    if mode == "fail":
        say(event="error", message="points outside the image in x.json")
        sys.exit(2)
    if mode == "crash":
        print("Traceback (most recent call last):", file=sys.stderr)
        print("RuntimeError: out of memory", file=sys.stderr)
        sys.exit(1)
    open(out, "wb").write(b"onnx")
    report = {"better": True, "holdout_mae_before": 9.0, "holdout_mae_after": 3.0, "loss": float("nan")}
    open(out[: -len(".onnx")] + ".report.json", "w").write(json.dumps(report))
    say(event="done", model=out, report=out[: -len(".onnx")] + ".report.json")
    """
)


@pytest.fixture
def setup(tmp_path: Path):
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    config = FinetuneConfig(data_dir=tmp_path / "data", threads=1, nice=7, memory_mb=4096, quick_steps=30)
    for camera in ("gate", "hall"):
        dataset = config.dataset_dir(camera)
        dataset.mkdir(parents=True)
        for stem in ("20260101T000000-1", "20260101T000005-2"):  # the fewest a fine-tune takes
            (dataset / f"{stem}.json").write_text('{"points": []}')
    events: list[JobState] = []

    def jobs(mode: str) -> FinetuneJobs:
        return FinetuneJobs(config, events.append, program=[sys.executable, str(script), mode])

    return config, jobs, events


async def finished(jobs: FinetuneJobs, camera: str = "gate") -> JobState:
    async with asyncio.timeout(60):
        while jobs.state(camera).state == "running":
            await asyncio.sleep(0.05)
    return jobs.state(camera)


async def test_a_job_runs_bounded_reports_progress_and_ends_with_the_report(setup) -> None:
    config, make, events = setup
    jobs = make("ok")
    started = await jobs.start("gate", "default", quick=True)
    assert started.state == "running" and Path(started.output).parent == config.models_dir("gate")
    state = await finished(jobs)
    assert state.state == "done" and state.fraction == 1.0 and state.report["better"] is True
    assert state.report["holdout_mae_after"] == 3.0 and state.message is None
    assert state.report["loss"] is None  # NaN in the report file: null, which JSON can carry
    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions) and 0.5 in fractions
    assert [e.state for e in events][-1] == "done" and events[0].state == "running"
    seen = json.loads(Path(state.output + ".seen.json").read_text())
    assert seen["argv"][:5] == [str(config.dataset_dir("gate")), "--from", "default", "-o", state.output]
    bounds = ["--threads", "1", "--nice", "0", "--max-memory-gb", "0"]
    quick = ["--standard-limit", "10", "--lr", "0.0001", "--steps", "30"]
    assert seen["argv"][5:] == ["--minutes", "1", "--progress", "jsonl", *bounds, *quick]
    niceness = os.nice(0) + 7  # nice -n 7 adds to this process's own niceness
    assert (seen["threads"], seen["nice"], seen["memory"]) == ("1", min(19, niceness), 4096 * 1024 * 1024)
    assert state.as_dict()["model"] == state.output


async def test_a_normal_run_uses_the_configured_minutes_and_every_standard_image(setup) -> None:
    config, make, _ = setup
    jobs = make("ok")
    await jobs.start("gate", "/models/cam.onnx", quick=False)
    state = await finished(jobs)
    seen = json.loads(Path(state.output + ".seen.json").read_text())
    assert seen["argv"][2] == "/models/cam.onnx" and seen["argv"][5:9] == [
        "--minutes",
        "10",
        "--progress",
        "jsonl",
    ]
    assert not {"--standard-limit", "--lr", "--steps"} & set(seen["argv"])


@pytest.mark.parametrize(
    ("mode", "message"),
    [("fail", "points outside the image in x.json"), ("crash", "RuntimeError: out of memory")],
)
async def test_a_failed_run_says_why_in_one_line(setup, mode: str, message: str) -> None:
    _, make, _ = setup
    jobs = make(mode)
    await jobs.start("gate", "default", quick=True)
    state = await finished(jobs)
    assert (state.state, state.message) == ("failed", message)
    log = Path(state.output).with_suffix(".log").read_text()
    assert mode != "crash" or "Traceback" in log


async def test_one_job_per_camera_and_cancel_ends_it(setup) -> None:
    _, make, _ = setup
    jobs = make("slow")
    await jobs.start("gate", "default", quick=True)
    with pytest.raises(JobError, match="already being fine-tuned"):
        await jobs.start("gate", "default", quick=True)
    async with asyncio.timeout(30):
        while jobs.state("gate").stage != "training":  # the stand-in is running
            await asyncio.sleep(0.05)
    state = await jobs.cancel("gate", grace=5)
    assert state.state == "cancelled" and state.finished is not None
    assert await jobs.cancel("gate") == state  # idempotent: an ended job is left as it is
    with pytest.raises(JobError, match="no fine-tuning running"):
        await jobs.cancel("hall")


async def test_a_camera_without_snapshots_cannot_start(setup) -> None:
    _, make, _ = setup
    with pytest.raises(JobError, match="camera yard has no snapshots yet"):
        await make("ok").start("yard", "default", quick=True)
    (config := setup[0]).dataset_dir("yard").mkdir(parents=True)
    (config.dataset_dir("yard") / "20260101T000000-1.json").write_text('{"points": []}')
    with pytest.raises(JobError, match="camera yard has 1 snapshot: fine-tuning needs at least 2"):
        await make("ok").start("yard", "default", quick=True)


async def test_the_service_data_root_reaches_the_command_unless_the_environment_names_one(
    setup, tmp_path, monkeypatch
) -> None:
    config, _, _ = setup
    for named, expected in ((None, str(tmp_path)), ("/elsewhere", "/elsewhere")):
        if named is None:
            monkeypatch.delenv("CROWDSTREAM_DATA", raising=False)
        else:
            monkeypatch.setenv("CROWDSTREAM_DATA", named)
        program = [
            sys.executable,
            "-c",
            "import os, sys; print(os.environ.get('CROWDSTREAM_DATA'), file=sys.stderr)",
        ]
        jobs = FinetuneJobs(config, lambda _state: None, program=program, data_root=tmp_path)
        await jobs.start("gate", "default", quick=True)
        await finished(jobs)
        logs = sorted(config.models_dir("gate").glob("*.log"))
        assert logs[-1].read_text().strip().splitlines()[-1] == expected
        for log in logs:
            log.unlink()


async def test_of_eight_starts_sent_together_one_gets_the_job_and_cancel_ends_its_whole_group(setup) -> None:
    _, make, events = setup
    jobs = make("family")
    results = await asyncio.gather(
        *(jobs.start("gate", "default", quick=True) for _ in range(8)), return_exceptions=True
    )
    started = [r for r in results if isinstance(r, JobState)]
    refused = [r for r in results if isinstance(r, JobError)]
    assert len(started) == 1 and len(refused) == 7, results
    assert all("camera gate is already being fine-tuned (started" in str(error) for error in refused)
    child_file = Path(started[0].output + ".child")
    await until(child_file.exists, 30, "the fine-tune's child started")
    child = int(child_file.read_text())
    assert not process_gone(child)
    state = await jobs.cancel("gate", grace=5)
    assert state.state == "cancelled" and jobs.running == []
    assert process_gone(child)  # the job's child went with it, before the answer
    assert await asyncio.gather(jobs.cancel("gate"), jobs.cancel("gate")) == [state, state]
    assert {event.output for event in events} == {state.output}  # the refused starts announced nothing


def test_a_group_runs_while_one_member_is_alive_and_not_once_all_are_zombies() -> None:
    leader = subprocess.Popen(["sleep", "60"], process_group=0)
    member = subprocess.Popen(["sleep", "60"], process_group=leader.pid)
    try:
        assert group_running(leader.pid)
        leader.kill()
        leader.wait()
        assert group_running(leader.pid)  # the leader is gone; its group still has a live member
        member.kill()
        os.waitid(os.P_PID, member.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie
        assert "State:\tZ" in Path(f"/proc/{member.pid}/status").read_text()
        assert not group_running(leader.pid)
    finally:
        for process in (leader, member):
            process.kill()
            process.wait()


async def test_the_service_runs_at_most_max_running_jobs_and_says_which_runs(setup, tmp_path) -> None:
    config, _, events = setup
    script = tmp_path / "stand_in.py"
    jobs = FinetuneJobs(config, events.append, program=[sys.executable, str(script), "slow"])
    assert config.max_running == 1  # the default
    await jobs.start("gate", "default", quick=True)
    with pytest.raises(
        JobLimit, match=r"at most 1 fine-tuning job\(s\) at once .* running now: camera gate \(started"
    ):
        await jobs.start("hall", "default", quick=True)
    await jobs.cancel("gate", grace=5)
    await jobs.start("hall", "default", quick=True)  # free again
    assert jobs.running == ["hall"]
    await jobs.close(grace=5)
    assert jobs.running == [] and jobs.state("hall").state == "cancelled"


async def test_each_job_has_its_own_output_and_an_ended_job_never_overwrites_a_newer_one(setup) -> None:
    config, make, events = setup
    slow = make("slow")
    first = await slow.start("gate", "default", quick=True)
    await slow.cancel("gate", grace=5)
    slow.program[-1] = "ok"  # the same manager, the next job finishes
    second = await slow.start("gate", "default", quick=True)
    assert second.output != first.output  # started within the same second, still another name
    done = await finished(slow)
    assert done.output == second.output and done.state == "done"
    assert slow.state("gate") == done
    assert Path(first.output).with_suffix(".log").exists() and Path(done.output).is_file()
    assert [e.state for e in events if e.output == first.output][-1] == "cancelled"
