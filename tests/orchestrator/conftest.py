"""Orchestrator fixtures: a scripted upstream in the OpenAI format and a project with a
repository on the server, wired to it through the gateway."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.api.helpers import ok
from tests.conftest import Api
from tests.gateway.fakes import FakeUpstream, serve

Script = Callable[[list[dict[str, Any]]], str]

REQUIREMENTS = """Here is the document.

```markdown
# export requirements

### REQ-EXPORT-001: Export orders as CSV

**EARS Statement**:
```
WHEN the user requests an export, the system SHALL return a CSV file of the orders within 5 seconds.
```

**Priority**: P1

**Acceptance Criteria**:
- [ ] A CSV file with one row per order is returned.

### REQ-EXPORT-002: Refuse an empty export

**EARS Statement**:
```
IF there are no orders, THEN the system SHALL answer 404 with the message "no orders".
```

**Priority**: P2

**Acceptance Criteria**:
- [ ] The answer is 404 and names the reason.
```
"""

BAD_REQUIREMENTS = """# export requirements

### REQ-EXPORT-001: Export

The export should be fast and user-friendly.
"""

DESIGN = """# export design

## C4 Context

The export service serves REQ-EXPORT-001 and REQ-EXPORT-002.

## C4 Container

An API container writes the CSV (REQ-EXPORT-001).

### ADR-001: Stream the CSV

**Status**: proposed
**Requirements**: REQ-EXPORT-001, REQ-EXPORT-002

**Context**: Orders can be many.

**Decision**: Stream rows as they are read.

**Consequences**: Constant memory.
"""

TASKS = """# export tasks

### TASK-001: CSV writer

**Requirements**: REQ-EXPORT-001
**Depends on**: None
**Estimate**: 3h
**Status**: Not started

### TASK-002: Empty export answer

**Requirements**: REQ-EXPORT-002
**Depends on**: TASK-001
**Estimate**: 1h
**Status**: Not started
"""


def stage_of(messages: list[dict[str, Any]]) -> str:
    first = str(messages[1]["content"])
    if "requirements engineer" in first:
        return "requirements"
    if "software architect" in first:
        return "design"
    return "tasks"


def good(messages: list[dict[str, Any]]) -> str:
    return {"requirements": REQUIREMENTS, "design": DESIGN, "tasks": TASKS}[stage_of(messages)]


@dataclass
class ScriptedUpstream(FakeUpstream):
    """Answers each chat request with ``script(messages)``; keeps every request's messages."""

    script: Script = good
    chats: list[list[dict[str, Any]]] = field(default_factory=list)
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
    )

    async def chat(self, request: Request) -> Response:
        body, failed = await self._enter(request, "chat")
        if failed:
            return failed
        self.chats.append(body["messages"])
        text = self.script(body["messages"])
        usage = self.usage
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return JSONResponse(
            {
                "id": "chatcmpl-scripted",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [choice],
                "usage": usage,
            }
        )

    def stages(self) -> list[str]:
        return [stage_of(m) for m in self.chats]


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedUpstream, str]]:
    fake = ScriptedUpstream(name="scripted")
    async with serve(fake) as url:
        yield fake, url


async def wire_project(api: Api, client: httpx.AsyncClient, url: str, name: str = "shop") -> str:
    """A project of ``client``'s tenant with an empty repository, and an OpenAI credential
    at the scripted upstream; returns the project id."""
    tenant = ok(await client.get("/v1/me"))["tenant_id"]
    (api.state.settings.effective_repos_root / tenant / name).mkdir(parents=True)
    body = {"provider": "openai", "api_key": "sk-test-openai-0001", "base_url": f"{url}/v1"}
    ok(await client.put("/v1/gateway/providers/openai", json=body))
    project = ok(await client.post("/v1/projects", json={"name": name, "repo_path": name}), 201)
    return str(project["id"])


async def read_events(
    client: httpx.AsyncClient, run_id: str, within: float = 180, **params: Any
) -> list[dict[str, Any]]:
    """Every event the SSE stream sends until it ends (the run finished or waits)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        async with client.stream("GET", f"/v1/runs/{run_id}/events", params=params) as r:
            assert r.status_code == 200, await r.aread()
            assert r.headers["content-type"].startswith("text/event-stream")
            ident = None
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    ident = int(line[4:])
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    assert data["seq"] == ident
                    out.append(data)
    return out
