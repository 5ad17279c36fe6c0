"""Cross-tenant cases of the Files and Batch routes, used by tests/api/test_isolation.py.

Tenant A uploads a batch file and starts a batch (its provider points where nothing
listens, so the lines fail upstream: no matter here); tenant B's valid key must never
see, read, delete, reuse or cancel them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

from tests.api.helpers import ok
from tests.batch.conftest import chat_lines


class _World(Protocol):
    a: httpx.AsyncClient
    b: httpx.AsyncClient


async def _a_starts_a_batch(w: _World) -> tuple[str, str]:
    body = {
        "provider": "openai",
        "api_key": "sk-tenant-a-batch",
        "base_url": "http://127.0.0.1:9/v1",
    }
    ok(await w.a.put("/v1/gateway/providers/openai", json=body))
    files = {"file": ("a.jsonl", chat_lines(2))}
    uploaded = ok(await w.a.post("/v1/files", files=files, data={"purpose": "batch"}))
    spec = {"input_file_id": uploaded["id"], "endpoint": "/v1/chat/completions"}
    batch = ok(await w.a.post("/v1/batches", json=spec))
    return uploaded["id"], batch["id"]


def _case(body: Callable[[_World, str, str], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    async def case(w: _World) -> None:
        file_id, batch_id = await _a_starts_a_batch(w)
        await body(w, file_id, batch_id)
        assert ok(await w.a.get(f"/v1/files/{file_id}"))["id"] == file_id  # A's is untouched
        assert ok(await w.a.get(f"/v1/batches/{batch_id}"))["id"] == batch_id

    return case


def _missing(method: str, path: str) -> Callable[[Any], Awaitable[None]]:
    async def body(w: _World, file_id: str, batch_id: str) -> None:
        url = path.format(file_id=file_id, batch_id=batch_id)
        r = await w.b.request(method, url)
        assert r.status_code == 404, r.text
        # and the attempt is in B's own log as any unknown id would be, naming A's id
        params = {"action": "access.not_found"}
        events = ok(await w.b.get("/v1/audit/events", params=params))["items"]
        assert [e["target"] for e in events] == [file_id if "file" in path else batch_id]

    return _case(body)


async def _files(w: _World, file_id: str, batch_id: str) -> None:
    assert ok(await w.b.get("/v1/files"))["data"] == []


async def _upload(w: _World, file_id: str, batch_id: str) -> None:
    mine = ok(
        await w.b.post("/v1/files", files={"file": ("b.jsonl", b"{}\n")}, data={"purpose": "batch"})
    )
    assert [f["id"] for f in ok(await w.a.get("/v1/files"))["data"]].count(mine["id"]) == 0


async def _batches(w: _World, file_id: str, batch_id: str) -> None:
    assert ok(await w.b.get("/v1/batches"))["data"] == []


async def _reuse(w: _World, file_id: str, batch_id: str) -> None:
    spec = {"input_file_id": file_id, "endpoint": "/v1/chat/completions"}
    r = await w.b.post("/v1/batches", json=spec)
    assert r.status_code == 404, r.text


BATCH_CASES: dict[tuple[str, str], Callable[[Any], Awaitable[None]]] = {
    ("GET", "/v1/files"): _case(_files),
    ("POST", "/v1/files"): _case(_upload),
    ("GET", "/v1/files/{file_id}"): _missing("GET", "/v1/files/{file_id}"),
    ("DELETE", "/v1/files/{file_id}"): _missing("DELETE", "/v1/files/{file_id}"),
    ("GET", "/v1/files/{file_id}/content"): _missing("GET", "/v1/files/{file_id}/content"),
    ("GET", "/v1/batches"): _case(_batches),
    ("POST", "/v1/batches"): _case(_reuse),
    ("GET", "/v1/batches/{batch_id}"): _missing("GET", "/v1/batches/{batch_id}"),
    ("POST", "/v1/batches/{batch_id}/cancel"): _missing("POST", "/v1/batches/{batch_id}/cancel"),
}
