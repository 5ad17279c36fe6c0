"""``POST /v1/projects/{id}/sdd/trace/recover`` on a real server: links with their signals, the
ranked mode, the dense signal with the server's embedder, the LLM judge through the gateway
as the key, and who may call it (another tenant: 404; a key of another project: 403; the
judge without ``models:use``: 403)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.api.helpers import new_tenant, ok, user_with_role
from tests.conftest import Api
from tests.sdd.recovery.test_recovery_recover import _project
from tests.sdd.recovery.test_recovery_verify import MODEL, Judge
from tests.sdd.recovery.test_recovery_verify import judge as judge  # the fixture

from musubi.settings import Settings


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.knowledge_embedder = "hashing"  # the dense plumbing, in milliseconds
    return settings


@pytest.fixture
async def project(api: Api, owner: httpx.AsyncClient, tmp_path: Path) -> AsyncIterator[str]:
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    repo = api.state.settings.effective_repos_root / tenant / "billing"
    shutil.copytree(_project(tmp_path / "src"), repo)
    body = {"name": "billing", "repo_path": "billing"}
    yield ok(await owner.post("/v1/projects", json=body), 201)["id"]


def _pairs(out: dict[str, object]) -> set[tuple[str, str]]:
    return {(link["requirement"], link["path"]) for link in out["links"]}  # type: ignore[attr-defined,index]


async def test_links_come_with_their_signals(owner: httpx.AsyncClient, project: str) -> None:
    url = f"/v1/projects/{project}/sdd/trace/recover"
    out = ok(await owner.post(url))  # no body: every default
    assert out["language"] == "en" and out["mode"] == "cut" and out["requirements"] == 2
    assert ("REQ-BILL-001", "src/billing/invoice.py") in _pairs(out)
    assert ("REQ-BILL-002", "src/mail/reminder.py") in _pairs(out)
    link = next(x for x in out["links"] if x["path"] == "src/billing/invoice.py")
    assert link["score"] > 0 and 0 < link["similarity"] <= 1 and link["dense"] is None
    assert "invoice" in {e["term"] for e in link["evidence"]}
    assert out["dense"] == {"requested": False, "used": False, "embedder": None, "weight": 0.0}
    assert out["verify"] is None
    # one requirement; the ranked mode answers its k best files whether or not they pass
    ranked = ok(
        await owner.post(url, json={"requirements": ["REQ-BILL-001"], "mode": "ranked", "top_k": 3})
    )
    assert [x["requirement"] for x in ranked["links"]] == ["REQ-BILL-001"] * 3
    scores = [x["score"] for x in ranked["links"]]
    assert scores == sorted(scores, reverse=True)
    assert ranked["links"][0]["path"] == "src/billing/invoice.py"
    bad = await owner.post(url, json={"requirements": ["REQ-NOPE-001"]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "requirements"
    bad = await owner.post(url, json={"mode": "all"})
    assert bad.status_code == 422


async def test_dense_uses_the_servers_embedder(owner: httpx.AsyncClient, project: str) -> None:
    out = ok(await owner.post(f"/v1/projects/{project}/sdd/trace/recover", json={"dense": True}))
    assert out["dense"] == {
        "requested": True,
        "used": True,
        "embedder": "hashing-64",
        "weight": 0.4,
    }
    assert all(isinstance(link["dense"], float) for link in out["links"])


async def test_the_judge_runs_through_the_gateway_as_the_key(
    api: Api, owner: httpx.AsyncClient, project: str, judge: Judge
) -> None:
    url = f"/v1/projects/{project}/sdd/trace/recover"
    body = {"threshold": 0.5, "verify": {"model": MODEL, "candidates": 3}}
    out = ok(await owner.post(url, json=body))
    assert _pairs(out) == {
        ("REQ-BILL-001", "src/billing/invoice.py"),
        ("REQ-BILL-002", "src/mail/reminder.py"),
    }
    verified = out["verify"]
    assert verified["model"] == MODEL and verified["requests"] == judge.calls == 2
    assert verified["estimate"]["requests"] == 2 and verified["cost"] > 0
    assert ["REQ-BILL-001", "src/billing/records.py"] in verified["dropped"]
    events = ok(await owner.get("/v1/audit/events", params={"action": "sdd.trace.verify"}))
    assert [e["target"] for e in events["items"]] == [project]
    # priced first: refused above the budget, before any call
    body["verify"] = {"model": MODEL, "max_cost": 0.0}
    r = await owner.post(url, json=body)
    assert r.status_code == 422 and r.json()["error"]["field"] == "max_cost"
    assert judge.calls == 2


async def test_who_may_recover(api: Api, owner: httpx.AsyncClient, project: str) -> None:
    url = f"/v1/projects/{project}/sdd/trace/recover"
    _, b_key = await new_tenant(owner, "tenant-b")
    async with api.client(b_key) as b:
        r = await b.post(url)
        assert r.status_code == 404 and project in r.json()["error"]["message"]
    other = ok(await owner.post("/v1/projects", json={"name": "other"}), 201)
    _, dev_key = await user_with_role(
        owner, "dev", "developer", scope="project", scope_id=other["id"]
    )
    async with api.client(dev_key) as dev:
        assert (await dev.post(url)).status_code == 403
    # a viewer reads the links, but the judge calls models: models:use is needed too
    _, viewer_key = await user_with_role(
        owner, "viewer", "viewer", scope="project", scope_id=project
    )
    async with api.client(viewer_key) as viewer:
        ok(await viewer.post(url))
        r = await viewer.post(url, json={"verify": {"model": MODEL}})
        assert r.status_code == 403 and "models:use" in r.text
