"""Cross-tenant cases of the fine-tuning routes, used by tests/api/test_isolation.py.

Tenant A uploads a training file and creates a job (no worker runs: it stays queued);
tenant B's valid key must never see, follow, cancel or reuse them. The base model is the
offline model's GGUF (``smollm2-135m``), which the test install carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

from tests.api.helpers import ok
from tests.finetune.conftest import chat_jsonl


class _World(Protocol):
    a: httpx.AsyncClient
    b: httpx.AsyncClient


async def _a_creates_a_job(w: _World) -> tuple[str, str]:
    files = {"file": ("a.jsonl", chat_jsonl())}
    uploaded = ok(await w.a.post("/v1/files", files=files, data={"purpose": "fine-tune"}))
    body = {"model": "smollm2-135m", "training_file": uploaded["id"], "suffix": "a-secret"}
    job = ok(await w.a.post("/v1/fine_tuning/jobs", json=body))
    assert job["status"] == "queued", job
    return uploaded["id"], job["id"]


def _case(body: Callable[[_World, str, str], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    async def case(w: _World) -> None:
        file_id, job_id = await _a_creates_a_job(w)
        await body(w, file_id, job_id)
        assert ok(await w.a.get(f"/v1/fine_tuning/jobs/{job_id}"))["status"] == "queued"

    return case


def _missing(method: str, path: str) -> Callable[[Any], Awaitable[None]]:
    async def body(w: _World, file_id: str, job_id: str) -> None:
        r = await w.b.request(method, path.format(job_id=job_id))
        assert r.status_code == 404, r.text
        assert "a-secret" not in r.text
        events = ok(await w.b.get("/v1/audit/events", params={"action": "access.not_found"}))
        assert [e["target"] for e in events["items"]] == [job_id]

    return _case(body)


async def _list(w: _World, file_id: str, job_id: str) -> None:
    assert ok(await w.b.get("/v1/fine_tuning/jobs"))["data"] == []


async def _reuse(w: _World, file_id: str, job_id: str) -> None:
    body = {"model": "smollm2-135m", "training_file": file_id}
    r = await w.b.post("/v1/fine_tuning/jobs", json=body)
    assert r.status_code == 404, r.text


JOBS = "/v1/fine_tuning/jobs"
FINETUNE_CASES: dict[tuple[str, str], Callable[[Any], Awaitable[None]]] = {
    ("GET", JOBS): _case(_list),
    ("POST", JOBS): _case(_reuse),
    ("GET", JOBS + "/{job_id}"): _missing("GET", JOBS + "/{job_id}"),
    ("POST", JOBS + "/{job_id}/cancel"): _missing("POST", JOBS + "/{job_id}/cancel"),
    ("GET", JOBS + "/{job_id}/events"): _missing("GET", JOBS + "/{job_id}/events"),
    ("GET", JOBS + "/{job_id}/checkpoints"): _missing("GET", JOBS + "/{job_id}/checkpoints"),
}
