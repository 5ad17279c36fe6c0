"""A real ``musubi worker --queue finetune`` process killed with SIGKILL mid-job: another
worker takes the job over once its lease runs out, resumes from the last checkpoint, and
trains on the same samples in the same order, to the same losses, as a run never stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from musubi.finetune.worker import FineTuneWorker
from tests.conftest import Api
from tests.finetune.conftest import chat_jsonl

MUSUBI = str(Path(sys.executable).parent / "musubi")
METHOD = {"type": "lora", "lora": {"hyperparameters": {"n_epochs": 4, "batch_size": 2}}}


pytestmark = pytest.mark.slow  # kills and restarts worker processes


def _worker(api: Api, log: Path) -> subprocess.Popen[bytes]:
    s = api.state.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    env |= {
        "MUSUBI_HOME": str(s.home),
        "MUSUBI_DATABASE_URL": s.effective_database_url,
        "MUSUBI_FINETUNE_MODELS": s.finetune_models,
        "MUSUBI_FINETUNE_LEASE_SECONDS": str(s.finetune_lease_seconds),
        "MUSUBI_LOG_LEVEL": "warning",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [MUSUBI, "worker", "--queue", "finetune"], env=env, stdout=out, stderr=out
        )


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def _steps(sdk: openai.AsyncOpenAI, job_id: str) -> list[tuple[int, float, list[int]]]:
    """(step, loss, samples) of every metrics event, oldest first (a step run twice: twice)."""
    events = [e async for e in sdk.fine_tuning.jobs.list_events(job_id, limit=100)]
    return [
        (e.data["step"], e.data["train_loss"], e.data["samples"])  # type: ignore[index]
        for e in reversed(events)
        if e.type == "metrics"
    ]


async def _wait(
    sdk: openai.AsyncOpenAI, job_id: str, proc: subprocess.Popen[bytes], log: Path, done: str
) -> None:
    async with asyncio.timeout(300):
        while True:
            assert proc.poll() is None, _tail(log)
            job = await sdk.fine_tuning.jobs.retrieve(job_id)
            if done == "checkpoint":
                if [c async for c in sdk.fine_tuning.jobs.checkpoints.list(job_id)]:
                    return
            elif job.status == done:
                return
            await asyncio.sleep(0.3)


async def test_a_killed_worker_s_job_resumes_from_its_checkpoint_in_the_same_order(
    api: Api, sdk: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    file_id = (await sdk.files.create(file=("t.jsonl", chat_jsonl()), purpose="fine-tune")).id
    create = {"model": "tiny-llama", "training_file": file_id, "seed": 3, "method": METHOD}
    killed = await sdk.fine_tuning.jobs.create(**create, suffix="killed")  # type: ignore[arg-type]
    log = tmp_path / "worker.log"
    first = _worker(api, log)
    try:
        await _wait(sdk, killed.id, first, log, "checkpoint")
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    assert (await sdk.fine_tuning.jobs.retrieve(killed.id)).status == "running"  # as it died
    before = await _steps(sdk, killed.id)
    second = _worker(api, log)
    try:
        await _wait(sdk, killed.id, second, log, "succeeded")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(20)
        except subprocess.TimeoutExpired:
            second.kill()
    messages = [e.message async for e in sdk.fine_tuning.jobs.list_events(killed.id, limit=100)]
    [resumed] = [m for m in messages if m.startswith("Resuming from checkpoint at step ")]
    at = int(resumed.rsplit(" ", 1)[1])
    assert at >= 6 and any("(attempt 2)" in m for m in messages)

    # The same job never interrupted, in this process: the reference.
    reference = await sdk.fine_tuning.jobs.create(**create, suffix="whole")  # type: ignore[arg-type]
    assert await FineTuneWorker(api.state.db, api.state.settings).run_once()
    assert (await sdk.fine_tuning.jobs.retrieve(reference.id)).status == "succeeded"
    expected = {step: (loss, samples) for step, loss, samples in await _steps(sdk, reference.id)}
    assert sorted(expected) == list(range(1, 25))
    after = await _steps(sdk, killed.id)
    assert len(after) > len(before) and {s for s, _, _ in after} == set(expected)
    for step, loss, samples in after:  # steps run before the kill and again after: both
        assert samples == expected[step][1], step
        assert abs(loss - expected[step][0]) < 1e-3 * max(1.0, expected[step][0]), step
    rerun = [s for s, _, _ in after[len(before) :]]
    assert rerun[0] == at + 1 and rerun[-1] == 24
