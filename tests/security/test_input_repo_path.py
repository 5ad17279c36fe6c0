"""Answers about a project's repository never show the server's filesystem.

Before: ``repo_path`` came back as the absolute path on the server
(``/var/lib/musubi/repos/ten_…/shop``), and refusals named the absolute tenant directory
(issue 14, finding 15). Now the API answers the path relative to the tenant's
repositories, the form it accepts.
"""

from __future__ import annotations

import httpx

from tests.api.helpers import ok
from tests.conftest import Api


async def test_repo_path_is_answered_relative_to_the_tenant(
    api: Api, owner: httpx.AsyncClient
) -> None:
    root = api.state.settings.effective_repos_root
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    (root / tenant / "shop" / "web").mkdir(parents=True)
    project = ok(await owner.post("/v1/projects", json={"name": "p", "repo_path": "shop/web"}), 201)
    assert project["repo_path"] == "shop/web"
    assert ok(await owner.get(f"/v1/projects/{project['id']}"))["repo_path"] == "shop/web"
    listed = ok(await owner.get("/v1/projects"))["items"]
    assert [p["repo_path"] for p in listed] == ["shop/web"]
    absolute = str(root / tenant / "shop")
    changed = ok(await owner.patch(f"/v1/projects/{project['id']}", json={"repo_path": absolute}))
    assert changed["repo_path"] == "shop"
    exported = ok(await owner.get("/v1/bulk/projects", params={"format": "json"}))
    assert [p["repo_path"] for p in exported["items"]] == ["shop"]

    server_dir = str(root)
    for bad in ("/etc", "../elsewhere", "missing"):
        r = await owner.post("/v1/projects", json={"name": "q", "repo_path": bad})
        assert r.status_code == 422 and r.json()["error"]["field"] == "repo_path"
        assert server_dir not in r.text, r.text
