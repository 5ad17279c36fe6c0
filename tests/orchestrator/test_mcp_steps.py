"""MCP tools added with the brownfield steps: context packing, trace impact, and a run of
one step kind (``change``/``reverse``/``steering``), with the official ``mcp`` client over
HTTP on a real server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from musubi.settings import Settings
from tests.api.helpers import ok
from tests.conftest import Api
from tests.orchestrator.conftest import ScriptedUpstream, read_events, wire_project
from tests.orchestrator.test_brownfield import STEERING
from tests.orchestrator.test_mcp import _data, _http

pytest.importorskip("tree_sitter", reason="the knowledge extra is not installed")

TASKS = """# shop tasks

### TASK-001: Order list

**Requirements**: REQ-SHOP-001
**Depends on**: None
**Status**: Not started

### TASK-002: Order export

**Requirements**: REQ-SHOP-002
**Depends on**: TASK-001
**Status**: Not started
"""


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The knowledge engine embeds with the fast hashing embedder."""
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        max_body_bytes=64 * 1024,
        bootstrap_key=None,
        knowledge_embedder="hashing",
    )


async def test_pack_context_trace_impact_and_a_steering_run_over_mcp(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    from tests.orchestrator.test_brownfield import SHOP_REQUIREMENTS

    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    root = api.state.settings.effective_repos_root / tenant / "shop"
    (root / "storage/specs").mkdir(parents=True)
    (root / "storage/tasks").mkdir(parents=True)
    (root / "storage/specs/shop-requirements.md").write_text(SHOP_REQUIREMENTS)
    (root / "storage/tasks/shop-tasks.md").write_text(TASKS)
    (root / "src").mkdir()
    (root / "src/invoice.py").write_text(
        "def invoice_total(lines):\n    return sum(l.amount for l in lines)\n"
    )
    async with _http(api, api.owner_key) as client:
        missing = await client.call_tool("pack_context", {"project_id": project_id, "task": "x"})
        assert missing.is_error and "not been indexed" in missing.content[0].text
        ok(await owner.post(f"/v1/projects/{project_id}/knowledge/index"))
        pack = _data(
            await client.call_tool(
                "pack_context",
                {"project_id": project_id, "task": "invoice total", "budget": 2000},
            )
        )
        assert pack["tokens"] <= 2000
        assert "src/invoice.py" in {p["path"] for p in pack["pieces"] if p["source"] == "code"}
        assert "invoice_total" in pack["text"]
        impact = _data(
            await client.call_tool(
                "trace_impact", {"project_id": project_id, "requirement_id": "REQ-SHOP-001"}
            )
        )
        assert impact["tasks"] == ["TASK-001"] and impact["dependentTasks"] == ["TASK-002"]
        unknown = await client.call_tool(
            "trace_impact", {"project_id": project_id, "requirement_id": "REQ-SHOP-404"}
        )
        assert unknown.is_error and "REQ-SHOP-404 not found" in unknown.content[0].text
        fake.script = lambda messages: STEERING
        est = _data(
            await client.call_tool(
                "estimate_run", {"project_id": project_id, "steps": ["steering"]}
            )
        )
        assert [s["step"] for s in est["steps"]] == ["steering"]
        run = _data(
            await client.call_tool("start_run", {"project_id": project_id, "steps": ["steering"]})
        )
        events = await read_events(owner, run["id"])
        assert events[-1]["type"] == "run.succeeded", events
        assert "invoice_total" in fake.chats[0][1]["content"]  # the repo map of the code
        bad = await client.call_tool(
            "start_run", {"project_id": project_id, "steps": ["steering", "design"]}
        )
        assert bad.is_error and "a run does some of requirements, design, tasks" in (
            bad.content[0].text
        )
        assert "review, steering alone" in bad.content[0].text
    assert (root / "steering/product.md").read_text().startswith("# Product")
    assert fake.calls == 1


async def test_reverse_uses_the_projects_knowledge_index_for_its_map_and_reads_code_now(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    from tests.orchestrator.test_brownfield import EXPORT_PY, _reverse

    fake, url = scripted
    project_id = await wire_project(api, owner, url)
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    root = api.state.settings.effective_repos_root / tenant / "shop"
    (root / "src/orders").mkdir(parents=True)
    (root / "src/orders/export.py").write_text(EXPORT_PY)
    ok(await owner.post(f"/v1/projects/{project_id}/knowledge/index"))
    # written after the index: in the prompt's code, not in the project's (stored) map
    (root / "src/orders/refund.py").write_text("def refund_order(order):\n    return order\n")
    fake.script = lambda messages: _reverse("src/orders/refund.py:1-2")
    body = {"idea": "src/orders", "steps": ["reverse"]}
    run = ok(await owner.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    events = await read_events(owner, run["id"])
    assert events[-1]["type"] == "run.succeeded", events
    prompt = fake.chats[0][1]["content"]
    repo_map = prompt.split("## Repository map", 1)[1].split("## Code of", 1)[0]
    assert "def export_csv(orders):" in repo_map and "refund_order" not in repo_map
    assert "    1| def refund_order(order):" in prompt
