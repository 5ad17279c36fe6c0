"""Background indexing: ``POST .../knowledge/index?wait=false`` answers 202 at once and the
index runs on; its record says queued, running, done or failed (with the error); a
server that stopped mid-run starts it again (``resume_indexing`` runs at start)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from musubi.api.routers.knowledge import resume_indexing
from musubi.context import bind_tenant
from musubi.knowledge.models import KnowledgeIndexRecord
from tests.api.helpers import ok
from tests.conftest import Api
from tests.knowledge.conftest import make_repo, repo_project

pytest.importorskip("tree_sitter", reason="the knowledge extra is not installed")


async def _settled(client: httpx.AsyncClient, base: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            status: dict[str, Any] = ok(await client.get(base))
            if status["state"] in ("done", "failed"):
                return status
            await asyncio.sleep(0.05)


async def test_a_background_index_answers_at_once_and_finishes(
    api: Api, owner: httpx.AsyncClient, tmp_path: Path
) -> None:
    project = await repo_project(api, owner, "shop", make_repo(tmp_path / "src", use_git=False))
    base = f"/v1/projects/{project}/knowledge"
    r = await owner.post(f"{base}/index", params={"wait": "false"})
    assert r.status_code == 202 and r.json() == {"project_id": project, "state": "queued"}
    status = await _settled(owner, base)
    assert status["state"] == "done" and status["indexed"] and status["chunks"] > 0
    assert status["error"] is None
    hits = ok(await owner.post(f"{base}/search", json={"query": "invoice total"}))["hits"]
    assert hits[0]["path"] == "src/billing.py"


async def test_unfinished_indexes_resume_and_failures_are_recorded(
    api: Api, owner: httpx.AsyncClient, tmp_path: Path
) -> None:
    me = ok(await owner.get("/v1/me"))
    good = await repo_project(api, owner, "shop", make_repo(tmp_path / "src", use_git=False))
    ghost = await repo_project(api, owner, "ghost", make_repo(tmp_path / "gone", use_git=False))
    shutil.rmtree(api.state.settings.effective_repos_root / me["tenant_id"] / "ghost")
    with bind_tenant(me["tenant_id"]):  # as a server that stopped mid-run left them
        async with api.state.db.transaction() as s:
            for project_id, state in ((good, "running"), (ghost, "queued")):
                s.add(
                    KnowledgeIndexRecord(
                        project_id=project_id, state=state, user_id=me["user_id"], actor="test"
                    )
                )
    assert await resume_indexing(api.state) == 2
    done = await _settled(owner, f"/v1/projects/{good}/knowledge")
    assert done["state"] == "done" and done["chunks"] > 0
    failed = await _settled(owner, f"/v1/projects/{ghost}/knowledge")
    assert failed["state"] == "failed" and failed["error"] and not failed["indexed"]
