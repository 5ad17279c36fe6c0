"""The fine-tuning jobs API through the official ``openai`` SDK, against a real server:
a job trains on the tiny model (worker in this process), its events and checkpoints read
back, and its adapter answers through the gateway; bad input fails precisely; another
tenant, or a key of another project, neither sees nor uses any of it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from musubi.finetune.trainer import generate, load_base
from musubi.finetune.worker import FineTuneWorker
from tests.api.helpers import new_tenant, ok, user_with_role
from tests.conftest import Api
from tests.finetune.conftest import EXAMPLES, FACTS, FAST, chat_jsonl


async def _metrics(sdk: openai.AsyncOpenAI, job_id: str) -> list[int]:
    """The steps of a job's metrics events so far."""
    events = sdk.fine_tuning.jobs.list_events(job_id, limit=100)
    return [e.data["step"] async for e in events if e.type == "metrics"]  # type: ignore[index]


def _lora(**hp: object) -> dict[str, object]:
    return {"type": "lora", "lora": {"rank": 16, "alpha": 32, "hyperparameters": hp or FAST}}


async def _upload(sdk: openai.AsyncOpenAI, data: bytes) -> str:
    return (await sdk.files.create(file=("train.jsonl", data), purpose="fine-tune")).id


async def test_a_job_trains_and_its_adapter_answers_through_the_gateway(
    api: Api, sdk: openai.AsyncOpenAI, tiny_base: Path
) -> None:
    job = await sdk.fine_tuning.jobs.create(
        model="tiny-llama",
        training_file=await _upload(sdk, chat_jsonl()),
        suffix="facts",
        seed=7,
        method=_lora(),  # type: ignore[arg-type]  # MUSUBI's method types beside OpenAI's
    )
    assert job.status == "queued" and job.fine_tuned_model is None
    assert job.hyperparameters.n_epochs == 10
    assert await FineTuneWorker(api.state.db, api.state.settings).run_once()

    job = await sdk.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:tiny-llama:{job.organization_id}:facts"
    assert job.trained_tokens and job.trained_tokens > 0
    events = [e async for e in sdk.fine_tuning.jobs.list_events(job.id, limit=100)]
    messages = [e.message for e in reversed(events)]
    assert messages[:2] == [
        f"Validating training file: {job.training_file}",
        "Files validated, moving job to queued state",
    ]
    assert messages[-2:] == [
        f"New fine-tuned model created: {job.fine_tuned_model}",
        "The job has successfully completed",
    ]
    losses = [e.data["train_loss"] for e in reversed(events) if e.type == "metrics"]  # type: ignore[index]
    assert len(losses) == 30 and losses[-1] < losses[0] - 0.5
    checkpoints = [c async for c in sdk.fine_tuning.jobs.checkpoints.list(job.id)]
    assert [c.step_number for c in checkpoints] == [30, 27, 24]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-30"

    models = [m.id async for m in sdk.models.list()]
    assert job.fine_tuned_model in models
    for question, answer in FACTS:
        chat = await sdk.chat.completions.create(
            model=job.fine_tuned_model,
            messages=[{"role": "user", "content": question}],
            max_tokens=12,
            temperature=0,
        )
        assert chat.choices[0].message.content == answer
        assert chat.usage is not None and chat.usage.completion_tokens > 0
    stream = await sdk.chat.completions.create(
        model=job.fine_tuned_model,
        messages=[{"role": "user", "content": FACTS[1][0]}],
        max_tokens=12,
        stream=True,
    )
    assert (
        "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        == FACTS[1][1]
    )
    base, tokenizer = load_base(tiny_base)  # the base model does not know them
    for question, answer in FACTS:
        said = generate(base, tokenizer, [{"role": "user", "content": question}], max_new_tokens=12)
        assert said[0] != answer

    # Another tenant: the job, its events and checkpoints, and the model do not exist.
    async with api.client(api.owner_key) as owner:
        _, b_key = await new_tenant(owner, "tenant-b")
        project = ok(await owner.post("/v1/projects", json={"name": "p"}), 201)
        _, project_key = await user_with_role(
            owner,
            "dev",
            "developer",
            scope="project",
            scope_id=project["id"],
            project_id=project["id"],
        )
    for key in (b_key, project_key):
        other = openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=key, max_retries=0)
        try:
            with pytest.raises(openai.NotFoundError):
                await other.fine_tuning.jobs.retrieve(job.id)
            for call in (
                other.fine_tuning.jobs.list_events(job.id),
                other.fine_tuning.jobs.checkpoints.list(job.id),
            ):
                with pytest.raises(openai.NotFoundError):
                    await call
            with pytest.raises(openai.NotFoundError):
                await other.fine_tuning.jobs.cancel(job.id)
            assert [j.id async for j in other.fine_tuning.jobs.list()] == []
            if key == b_key:  # another tenant: no such model, in any spelling
                assert job.fine_tuned_model not in [m.id async for m in other.models.list()]
                for name in (job.fine_tuned_model, f"finetuned/{job.fine_tuned_model}"):
                    with pytest.raises((openai.NotFoundError, openai.BadRequestError)):
                        await other.chat.completions.create(
                            model=name, messages=[{"role": "user", "content": FACTS[0][0]}]
                        )
        finally:
            await other.close()
    assert (await sdk.fine_tuning.jobs.retrieve(job.id)).status == "succeeded"


async def test_a_malformed_or_small_file_fails_the_job_naming_the_line(
    sdk: openai.AsyncOpenAI,
) -> None:
    lines = chat_jsonl().splitlines(keepends=True)
    lines[2] = b'{"messages": [{"role": "user", "content": "hi"}]}\n'
    job = await sdk.fine_tuning.jobs.create(
        model="tiny-llama", training_file=await _upload(sdk, b"".join(lines))
    )
    assert job.status == "failed" and job.error is not None
    assert job.error.param == "training_file"
    assert "line 3: an example needs at least one assistant message" in job.error.message
    lines[2] = b"{not json\n"
    job = await sdk.fine_tuning.jobs.create(
        model="tiny-llama", training_file=await _upload(sdk, b"".join(lines))
    )
    assert job.error is not None and "line 3: not valid JSON" in job.error.message
    small = await _upload(sdk, chat_jsonl(EXAMPLES[:4]))
    job = await sdk.fine_tuning.jobs.create(model="tiny-llama", training_file=small)
    assert job.error is not None and "has 4 example(s); at least 10" in job.error.message
    events = [e.message async for e in sdk.fine_tuning.jobs.list_events(job.id)]
    assert events[0].startswith("Validation failed:")


async def test_bad_requests_are_refused_with_what_to_fix(sdk: openai.AsyncOpenAI) -> None:
    good = await _upload(sdk, chat_jsonl())
    batch_file = (await sdk.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")).id
    cases = [
        ({"model": "nope", "training_file": good}, "'nope' is not a base model"),
        (
            {"model": "tiny-llama", "training_file": batch_file},
            "has purpose 'batch', not 'fine-tune'",
        ),
        (
            {"model": "tiny-llama", "training_file": good, "hyperparameters": {"n_epochs": 0}},
            "n_epochs: 'auto' or a int from 1 to 50",
        ),
        (
            {"model": "tiny-llama", "training_file": good, "method": {"type": "dpo"}},
            "'dpo' is not supported",
        ),
        (
            {
                "model": "tiny-llama",
                "training_file": good,
                "method": {"type": "lora", "lora": {"rank": 0}},
            },
            "method.lora.rank",
        ),
        ({"model": "tiny-llama", "training_file": good, "suffix": "a:b"}, "suffix"),
    ]
    for body, message in cases:
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            await sdk.fine_tuning.jobs.create(**body)  # type: ignore[arg-type]
        assert message in str(caught.value), (body, str(caught.value))
    with pytest.raises(openai.NotFoundError):
        await sdk.fine_tuning.jobs.create(model="tiny-llama", training_file="file-missing")


async def test_a_base_model_the_worker_cannot_load_fails_with_the_reason(
    api: Api, sdk: openai.AsyncOpenAI
) -> None:
    job = await sdk.fine_tuning.jobs.create(
        model="broken", training_file=await _upload(sdk, chat_jsonl())
    )
    assert job.status == "queued"
    assert await FineTuneWorker(api.state.db, api.state.settings).run_once()
    job = await sdk.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "failed" and job.error is not None
    assert job.error.code == "invalid_base_model"
    assert "nothing-here is neither a model folder nor a .gguf file" in job.error.message


async def test_cancel_before_and_while_running(api: Api, sdk: openai.AsyncOpenAI) -> None:
    worker = FineTuneWorker(api.state.db, api.state.settings)
    file_id = await _upload(sdk, chat_jsonl())
    queued = await sdk.fine_tuning.jobs.create(model="tiny-llama", training_file=file_id)
    assert (await sdk.fine_tuning.jobs.cancel(queued.id)).status == "cancelled"
    assert not await worker.run_once()  # nothing left to claim

    slow = _lora(n_epochs=50, batch_size=1)
    job = await sdk.fine_tuning.jobs.create(model="tiny-llama", training_file=file_id, method=slow)  # type: ignore[arg-type]
    running = asyncio.create_task(worker.run_once())
    async with asyncio.timeout(120):
        while not await _metrics(sdk, job.id):  # noqa: ASYNC110 - polling, as a client does
            await asyncio.sleep(0.2)
    assert (await sdk.fine_tuning.jobs.retrieve(job.id)).status == "running"
    assert (await sdk.fine_tuning.jobs.cancel(job.id)).status == "cancelled"
    async with asyncio.timeout(60):
        assert await running  # the worker noticed at its next renewal and stopped
    job = await sdk.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "cancelled" and job.fine_tuned_model is None
    steps = [
        e.data["step"]
        async for e in sdk.fine_tuning.jobs.list_events(job.id, limit=100)
        if e.type == "metrics"
    ]  # type: ignore[index]
    assert max(steps) < 600  # stopped long before its end
    failed = await sdk.fine_tuning.jobs.create(model="broken", training_file=file_id)
    assert await worker.run_once()
    with pytest.raises(openai.ConflictError, match="has failed; it cannot be cancelled"):
        await sdk.fine_tuning.jobs.cancel(failed.id)
