"""The MCP server with the official ``mcp`` client: in-process and over HTTP on a real
server, a wrong key refused, another tenant's project out of reach."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from musubi.api.mcp.tools import build_server
from tests.api.helpers import new_tenant, ok
from tests.conftest import Api
from tests.orchestrator.conftest import (
    BAD_REQUIREMENTS,
    REQUIREMENTS,
    ScriptedUpstream,
    read_events,
    wire_project,
)

MUSUBI = str(Path(sys.executable).parent / "musubi")
TOOLS = {
    "list_projects",
    "requirements",
    "validate_requirements",
    "trace_gaps",
    "trace_impact",
    "search_code",
    "pack_context",
    "estimate_run",
    "start_run",
    "get_run",
    "approve_run",
}


def _data(result: Any) -> Any:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        content = result.structured_content
        return content.get("result", content) if isinstance(content, dict) else content
    return json.loads(result.content[0].text)


@asynccontextmanager
async def _http(api: Api, key: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(f"{api.base_url}/mcp/", http_client=http)
        async with Client(transport) as client:
            yield client


async def test_in_process_client_lists_and_calls_the_tools(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    _, url = scripted
    project_id = await wire_project(api, owner, url)
    principal = await api.state.auth.authenticate(api.owner_key)

    def no_runs() -> Any:
        raise AssertionError("no run is started in this test")

    server = build_server(lambda: api.state, no_runs, principal)
    async with Client(server) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == TOOLS
        projects = _data(await client.call_tool("list_projects", {}))
        assert [p["id"] for p in projects] == [project_id]
        found = _data(await client.call_tool("validate_requirements", {"text": REQUIREMENTS}))
        assert found == []
        bad = _data(await client.call_tool("validate_requirements", {"text": BAD_REQUIREMENTS}))
        assert {"ears.missing", "quality.no-criteria"} <= {d["code"] for d in bad}
        est = _data(
            await client.call_tool("estimate_run", {"project_id": project_id, "idea": "CSV"})
        )
        assert [s["step"] for s in est["steps"]] == ["requirements", "design", "tasks"]
        assert est["cost"] > 0


async def test_over_http_a_key_drives_a_run_and_a_wrong_key_is_refused(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    async with _http(api, api.owner_key) as client:
        assert fake.calls == 0
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        run = _data(
            await client.call_tool(
                "start_run", {"project_id": project_id, "idea": "Export orders", "feature": "x"}
            )
        )
        await read_events(owner, run["id"])
        shown = _data(await client.call_tool("get_run", {"run_id": run["id"]}))
        assert shown["status"] == "awaiting_approval"
        assert _data(await client.call_tool("approve_run", {"run_id": run["id"]}))["status"] in (
            "queued",
            "running",
        )
        reqs = _data(await client.call_tool("requirements", {"project_id": project_id}))
        assert [r["id"] for r in reqs["requirements"]] == ["REQ-EXPORT-001", "REQ-EXPORT-002"]
    async with httpx.AsyncClient() as raw:
        for key in ("msk_00000000_" + "x" * 43, ""):
            r = await raw.post(
                f"{api.base_url}/mcp/",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Authorization": f"Bearer {key}"} if key else {},
            )
            assert r.status_code == 401, r.text
    with pytest.raises(ExceptionGroup) as raised:  # the SDK's task groups wrap its error
        async with _http(api, "msk_00000000_" + "y" * 43) as client:
            await client.list_tools()
    assert "Server returned an error response" in repr(raised.value)


async def test_another_tenants_project_is_not_reachable_over_mcp(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    _, b_key = await new_tenant(owner, "b")
    async with _http(api, b_key) as client:
        assert _data(await client.call_tool("list_projects", {})) == []
        for tool, args in [
            ("requirements", {"project_id": project_id}),
            ("trace_gaps", {"project_id": project_id}),
            ("estimate_run", {"project_id": project_id, "idea": "x"}),
            ("start_run", {"project_id": project_id, "idea": "x"}),
            ("search_code", {"project_id": project_id, "query": "x"}),
            ("pack_context", {"project_id": project_id, "task": "x"}),
            ("trace_impact", {"project_id": project_id, "requirement_id": "REQ-X-001"}),
            ("start_run", {"project_id": project_id, "steps": ["steering"]}),
        ]:
            result = await client.call_tool(tool, args)
            assert result.is_error, (tool, result.content)
            assert "not found" in result.content[0].text, (tool, result.content)
    assert fake.calls == 0
    assert ok(await owner.get(f"/v1/projects/{project_id}/runs"))["items"] == []


async def test_musubi_mcp_serves_the_tools_over_stdio(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    _, url = scripted
    project_id = await wire_project(api, owner, url)
    settings = api.state.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    env |= {
        "MUSUBI_HOME": str(settings.home),
        "MUSUBI_DATABASE_URL": settings.effective_database_url,
        "MUSUBI_API_KEY": api.owner_key,
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
    }
    params = StdioServerParameters(command=MUSUBI, args=["mcp"], env=env)
    async with Client(params) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        projects = _data(await client.call_tool("list_projects", {}))
        assert [p["id"] for p in projects] == [project_id]
        est = _data(
            await client.call_tool("estimate_run", {"project_id": project_id, "idea": "CSV"})
        )
        assert est["steps"][0]["model"] == "gpt-4.1"
