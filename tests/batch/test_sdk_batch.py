"""The official ``openai`` SDK's batch workflow, unchanged, against MUSUBI."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta

import httpx
import openai
import pytest

from musubi.batch.models import Batch
from musubi.batch.service import expire_due
from musubi.context import bind_tenant
from musubi.storage.base import utcnow
from tests.batch.conftest import chat_lines, until
from tests.conftest import Api
from tests.gateway.fakes import FakeUpstream


async def wait_done(sdk: openai.AsyncOpenAI, batch_id: str, within: float = 120) -> object:
    async with asyncio.timeout(within):
        while True:
            batch = await sdk.batches.retrieve(batch_id)
            if batch.status in ("completed", "failed", "cancelled", "expired"):
                return batch
            await asyncio.sleep(0.2)


async def test_a_thousand_line_batch_runs_to_completion(
    sdk: openai.AsyncOpenAI, wired: tuple[FakeUpstream, str]
) -> None:
    fake, _ = wired
    uploaded = await sdk.files.create(file=("in.jsonl", chat_lines(1000)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    batch = await sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.request_counts is not None and batch.request_counts.total == 1000
    done = await wait_done(sdk, batch.id)
    assert done.status == "completed", done  # type: ignore[attr-defined]
    counts = done.request_counts  # type: ignore[attr-defined]
    assert (counts.total, counts.completed, counts.failed) == (1000, 1000, 0)
    assert done.error_file_id is None  # type: ignore[attr-defined]

    content = await sdk.files.content(done.output_file_id)  # type: ignore[attr-defined]
    results = [json.loads(line) for line in content.text.splitlines()]
    assert sorted(r["custom_id"] for r in results) == sorted(f"req-{i}" for i in range(1, 1001))
    assert all(r["response"]["status_code"] == 200 and r["error"] is None for r in results)
    assert results[0]["response"]["body"]["choices"][0]["message"]["content"]
    # each line reached the upstream exactly once
    sent = Counter(body["messages"][0]["content"] for kind, body, _ in fake.requests)
    assert len(sent) == 1000 and max(sent.values()) == 1

    listed = await sdk.batches.list()
    assert [b.id for b in listed.data] == [batch.id]
    files = await sdk.files.list()
    assert {f.purpose for f in files.data} == {"batch", "batch_output"}


async def test_malformed_lines_fail_alone_with_their_line_numbers(
    sdk: openai.AsyncOpenAI, wired: tuple[FakeUpstream, str]
) -> None:
    good = chat_lines(3).decode().splitlines()
    text = "\n".join(
        [
            good[0],
            "{not json",
            json.dumps({"custom_id": "x", "method": "POST", "url": "/v1/embeddings", "body": {}}),
            good[1],
            good[1],  # the same custom_id again
            json.dumps(
                {
                    "custom_id": "y",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini"},
                }
            ),
            good[2],
        ]
    )
    uploaded = await sdk.files.create(file=("in.jsonl", text.encode()), purpose="batch")
    batch = await sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await wait_done(sdk, batch.id)
    counts = done.request_counts  # type: ignore[attr-defined]
    assert (counts.total, counts.completed, counts.failed) == (7, 3, 4)
    errors = (await sdk.files.content(done.error_file_id)).text.splitlines()  # type: ignore[attr-defined]
    by_line = {json.loads(e)["error"]["line"]: json.loads(e)["error"]["message"] for e in errors}
    assert sorted(by_line) == [2, 3, 5, 6]
    assert "line 2: not valid JSON" in by_line[2]
    assert "url: must be the batch's endpoint" in by_line[3]
    assert "used by an earlier line" in by_line[5]
    assert "messages" in by_line[6]


async def test_a_model_the_key_may_not_use_is_refused_at_creation(
    sdk: openai.AsyncOpenAI, owner: httpx.AsyncClient, wired: tuple[FakeUpstream, str]
) -> None:
    fake, _ = wired
    r = await owner.put("/v1/gateway/config", json={"allow": ["gpt-4o-mini"]})
    assert r.status_code == 200, r.text
    text = chat_lines(2) + chat_lines(1, model="gpt-4o", start=3)
    uploaded = await sdk.files.create(file=("in.jsonl", text), purpose="batch")
    with pytest.raises(openai.BadRequestError) as err:
        await sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert "line 3" in err.value.message and "gpt-4o" in err.value.message
    assert (await sdk.batches.list()).data == []  # nothing stored
    assert fake.calls == 0


async def test_bad_files_and_ids_get_precise_errors(
    sdk: openai.AsyncOpenAI, api: object, owner: httpx.AsyncClient
) -> None:
    with pytest.raises(openai.NotFoundError):
        await sdk.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    uploaded = await sdk.files.create(file=("a.txt", b"hello\n"), purpose="user_data")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        await sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        await sdk.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/images",
            completion_window="24h",  # type: ignore[arg-type]
        )
    r = await owner.post("/v1/files", files={"file": ("a.jsonl", b"{}")}, data={"purpose": "nope"})
    assert r.status_code == 400 and "purpose" in r.text
    r = await owner.post("/v1/files", data={"purpose": "batch"})
    assert r.status_code in (400, 422) and "file" in r.text
    deleted = await sdk.files.delete(uploaded.id)
    assert deleted.deleted
    with pytest.raises(openai.NotFoundError):
        await sdk.files.retrieve(uploaded.id)


async def test_a_batch_past_its_window_expires_keeping_what_finished(
    sdk: openai.AsyncOpenAI, api: Api, wired: tuple[FakeUpstream, str]
) -> None:
    fake, _ = wired
    fake.gate = asyncio.Event()  # hold the lines: the window ends while they wait
    uploaded = await sdk.files.create(file=("in.jsonl", chat_lines(300)), purpose="batch")
    batch = await sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    await until(lambda: fake.held > 0)
    me = (await sdk.get("/me", cast_to=httpx.Response)).json()
    with bind_tenant(me["tenant_id"]):
        async with api.state.db.transaction() as s:
            (await s.get(Batch, batch.id)).expires_at = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
    jobs = await expire_due(api.state.db)
    assert [j.job_id for j in jobs] == [f"{batch.id}:expire"]
    assert api.state.queue is not None
    await api.state.queue.submit(jobs)
    fake.gate.set()
    done = await wait_done(sdk, batch.id)
    assert done.status == "expired" and done.expired_at  # type: ignore[attr-defined]
    counts = done.request_counts  # type: ignore[attr-defined]
    assert counts.total == 300 and 0 < counts.completed < 300
    errors = (await sdk.files.content(done.error_file_id)).text.splitlines()  # type: ignore[attr-defined]
    assert {json.loads(e)["error"]["code"] for e in errors} == {"batch_expired"}
    assert await expire_due(api.state.db) == []  # once
