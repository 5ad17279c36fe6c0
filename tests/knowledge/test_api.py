"""The knowledge API: scoped to tenant and project; B can never reach A's chunks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.api.helpers import new_tenant, ok, user_with_role
from tests.conftest import Api
from tests.knowledge.conftest import make_repo, repo_project

pytest.importorskip("tree_sitter", reason="the knowledge extra is not installed")


async def _indexed_project(api: Api, client: httpx.AsyncClient, name: str, src: Path) -> str:
    project = await repo_project(api, client, name, src)
    report = ok(await client.post(f"/v1/projects/{project}/knowledge/index"))
    assert report["files"] >= 1 and report["chunks"] > 0
    return project


async def test_index_search_context_and_isolation(
    api: Api, owner: httpx.AsyncClient, tmp_path: Path
) -> None:
    src = make_repo(tmp_path / "src-a", use_git=False)
    a_project = await _indexed_project(api, owner, "shop", src)
    base = f"/v1/projects/{a_project}/knowledge"
    status = ok(await owner.get(base))
    assert (status["indexed"] and status["embedder"] == "hashing-64") or status["embedder"]
    hits = ok(await owner.post(f"{base}/search", json={"query": "invoice total amount"}))["hits"]
    assert hits[0]["path"] == "src/billing.py" and hits[0]["symbol"] == "Invoice.total_amount"
    assert {"start", "end", "score"} <= set(hits[0])
    go = ok(await owner.post(f"{base}/search", json={"query": "password", "language": "go"}))
    assert {h["path"] for h in go["hits"]} == {"src/auth.go"}
    files = ok(await owner.post(f"{base}/search", json={"query": "invoice", "files": True}))
    assert files["files"][0]["path"] == "src/billing.py"
    pack = ok(
        await owner.post(
            f"{base}/context", json={"task": "change the invoice total", "budget": 600}
        )
    )
    assert 0 < pack["tokens"] <= 600 and "src/billing.py" in pack["text"]

    # Tenant B: its own project with a repo of its own; A's chunks are unreachable.
    _, b_key = await new_tenant(owner, "b-corp")
    async with api.client(b_key) as b:
        other = tmp_path / "src-b"
        (other / "lib").mkdir(parents=True)
        (other / "lib" / "cart.py").write_text("def add_item(cart, item):\n    cart.append(item)\n")
        b_project = await _indexed_project(api, b, "cart", other)
        for body in (
            {"query": "invoice total amount"},
            {"query": "invoice", "files": True},
            {"query": "CheckPassword", "path": "src/*"},
        ):
            r = ok(await b.post(f"/v1/projects/{b_project}/knowledge/search", json=body))
            assert "billing" not in str(r) and "auth.go" not in str(r)
        pack = ok(
            await b.post(
                f"/v1/projects/{b_project}/knowledge/context",
                json={"task": "invoice reminder password"},
            )
        )
        assert "billing" not in pack["text"] and "Invoice" not in pack["text"]
        for method, suffix, body in (
            ("GET", "", None),
            ("POST", "/index", None),
            ("POST", "/search", {"query": "invoice"}),
            ("POST", "/context", {"task": "invoice"}),
        ):
            r = await b.request(method, f"{base}{suffix}", json=body)
            assert r.status_code == 404, (suffix, r.text)


async def test_permissions_and_missing_index(api: Api, owner: httpx.AsyncClient) -> None:
    project = ok(await owner.post("/v1/projects", json={"name": "bare"}), 201)
    base = f"/v1/projects/{project['id']}/knowledge"
    assert ok(await owner.get(base))["indexed"] is False
    r = await owner.post(f"{base}/search", json={"query": "x"})
    assert r.status_code == 409 and "indexed" in r.json()["error"]["message"]
    r = await owner.post(f"{base}/index")
    assert r.status_code == 409 and r.json()["error"]["field"] == "repo_path"
    _, viewer = await user_with_role(owner, "viewer-1", "viewer")
    async with api.client(viewer) as v:
        assert (await v.post(f"{base}/index")).status_code == 403
        assert (await v.get(base)).status_code == 200
