"""The SDD API reads a project's repository, only under the tenant's own repos directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from tests.api.helpers import ok, user_with_role
from tests.conftest import Api

FIXTURE = Path(__file__).parents[1] / "sdd" / "fixtures" / "auth-project"
REAL = Path(__file__).parents[1] / "fixtures" / "musubi-projects"


async def _project_with_repo(api: Api, owner: httpx.AsyncClient) -> tuple[str, Path]:
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    repo = api.state.settings.effective_repos_root / tenant / "shop"
    shutil.copytree(FIXTURE, repo)
    project = ok(await owner.post("/v1/projects", json={"name": "shop", "repo_path": "shop"}), 201)
    assert project["repo_path"] == "shop"  # relative to the tenant's directory, never absolute
    return project["id"], repo


async def test_trace_gaps_and_requirements_over_the_api(api: Api, owner: httpx.AsyncClient) -> None:
    project_id, repo = await _project_with_repo(api, owner)
    base = f"/v1/projects/{project_id}/sdd"
    trace = ok(await owner.get(f"{base}/trace", params={"commits": "false"}))
    assert "REQ-AUTH-004" in {g["id"] for g in trace["gaps"]}
    assert trace["coverage"]
    reqs = ok(await owner.get(f"{base}/requirements"))
    assert "REQ-AUTH-001" in {r["id"] for r in reqs["requirements"]}
    workflow = ok(await owner.get(f"{base}/workflow"))
    assert workflow["started"] is False
    ok(await owner.get(f"{base}/gates"))
    # Plant the missing links: the gap closes.
    (repo / "src" / "mfa.py").write_text("# Implements REQ-AUTH-004\n")
    (repo / "tests" / "test_mfa.py").write_text("def test_req_auth_004_mfa():\n    pass\n")
    design = next((repo / "storage" / "design").glob("*-design.md"))
    design.write_text(design.read_text() + "\nCovers REQ-AUTH-004.\n")
    trace = ok(await owner.get(f"{base}/trace", params={"commits": "false"}))
    assert "REQ-AUTH-004" not in {g["id"] for g in trace["gaps"]}
    bad = await owner.get(f"{base}/trace", params={"require": "design,vibes"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "require"


async def test_repo_path_must_stay_inside_the_tenants_directory(
    api: Api, owner: httpx.AsyncClient, tmp_path: Path
) -> None:
    for path in ["/etc", "../other-tenant/repo", str(tmp_path), "missing-dir"]:
        r = await owner.post("/v1/projects", json={"name": "p", "repo_path": path})
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"]["field"] == "repo_path"
    project = ok(await owner.post("/v1/projects", json={"name": "p"}), 201)
    r = await owner.get(f"/v1/projects/{project['id']}/sdd/trace")
    assert r.status_code == 409 and "repo_path" in r.json()["error"]["message"]


async def test_project_role_is_needed(api: Api, owner: httpx.AsyncClient) -> None:
    project_id, _ = await _project_with_repo(api, owner)
    other = ok(await owner.post("/v1/projects", json={"name": "other"}), 201)
    _, key = await user_with_role(owner, "dev", "developer", scope="project", scope_id=other["id"])
    async with api.client(key) as dev:
        r = await dev.get(f"/v1/projects/{project_id}/sdd/trace")
        assert r.status_code == 403


async def test_a_real_musubi_project_over_the_api(api: Api, owner: httpx.AsyncClient) -> None:
    """TENJIN (85 requirements, Japanese, FR-/REQ-TOOL- IDs) with code citing its IDs."""
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    repo = api.state.settings.effective_repos_root / tenant / "tenjin"
    shutil.copytree(REAL / "TENJIN", repo)
    shutil.copytree(REAL / "code" / "TENJIN", repo, dirs_exist_ok=True)
    project = ok(
        await owner.post("/v1/projects", json={"name": "tenjin", "repo_path": "tenjin"}), 201
    )
    base = f"/v1/projects/{project['id']}/sdd"
    reqs = {r["id"]: r for r in ok(await owner.get(f"{base}/requirements"))["requirements"]}
    assert len(reqs) == 85
    crud = reqs["FR-CRUD-002"]
    assert (crud["title"], crud["pattern"], crud["priority"]) == (
        "理論詳細表示",
        "Event-Driven",
        "Must Have",
    )
    assert len(reqs["REQ-TOOL-001"]["acceptance_criteria"]) == 5
    trace = ok(await owner.get(f"{base}/trace", params={"commits": "false"}))
    assert trace["coverage"]["requirements"] == 85
    assert (trace["coverage"]["fullyTraced"], trace["coverage"]["code"]) == (1, 3.5)
    code = trace["matrix"]["entries"]["REQ-TOOL-001"]["code"]
    assert [(c["path"], c["line"]) for c in code] == [("src/tenjin/tools/search.py", 5)]
    unknown = {g["id"] for g in trace["gaps"] if g["kind"] == "unknown-id"}
    assert unknown == {"REQ-TOOL-999", "NFR-001", "NFR-002"}
    ok(await owner.get(f"{base}/gates"))
