"""``MUSUBI_KNOWLEDGE_EMBEDDER=gateway:<model>``: a project's chunks are embedded by a
provider through the gateway, as the calling key: its tenant's credentials, and a usage
record for every batch. A tenant with no such provider gets a clear 404 and no index."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from musubi.settings import Settings
from tests.api.helpers import new_tenant, ok
from tests.conftest import Api
from tests.gateway.conftest import _no_ollama_probe, upstream, wired
from tests.gateway.fakes import FakeUpstream
from tests.knowledge.conftest import make_repo, repo_project

__all__ = ["_no_ollama_probe", "upstream", "wired"]

pytest.importorskip("tree_sitter", reason="the knowledge extra is not installed")

MODEL = "text-embedding-3-small"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        bootstrap_key=None,
        knowledge_embedder=f"gateway:{MODEL}",
    )


async def test_chunks_are_embedded_through_the_gateway_as_the_key(
    api: Api, owner: httpx.AsyncClient, wired: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, _ = wired
    project = await repo_project(api, owner, "shop", make_repo(tmp_path / "src", use_git=False))
    base = f"/v1/projects/{project}/knowledge"
    report = ok(await owner.post(f"{base}/index"))
    assert report["chunks"] > 0 and report["embedded"] == report["chunks"]
    calls = [(body, headers) for kind, body, headers in fake.requests if kind == "embedding"]
    texts = [t for body, _ in calls for t in body["input"]]
    assert calls[0][0]["input"] == ["dimension"]  # the probe that learns the dimension
    assert len(texts) == 1 + report["chunks"] and any("total_amount" in t for t in texts)
    assert {body["model"] for body, _ in calls} == {MODEL}
    assert {h["authorization"] for _, h in calls} == {"Bearer sk-test-openai-0001"}
    assert ok(await owner.get(base))["embedder"] == f"gateway:{MODEL}"

    hits = ok(await owner.post(f"{base}/search", json={"query": "invoice total amount"}))["hits"]
    assert hits and hits[0]["path"] == "src/billing.py"
    assert [k for k, _, _ in fake.requests].count("embedding") == len(calls) + 1  # the query

    await api.state.ledger.flush()
    usage = {u["model"]: u for u in ok(await owner.get("/v1/usage"))["items"]}
    assert usage[MODEL]["requests"] == len(calls) + 1


async def test_a_tenant_without_that_provider_gets_a_clear_error(
    api: Api, owner: httpx.AsyncClient, wired: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, _ = wired
    _, key = await new_tenant(owner, "no-provider")
    async with api.client(key) as b:
        project = await repo_project(api, b, "repo", make_repo(tmp_path / "src", use_git=False))
        r = await b.post(f"/v1/projects/{project}/knowledge/index")
        assert r.status_code == 404, r.text
        # names the model, and what this key may use instead (an offline model, if any)
        assert MODEL in r.text and "available:" in r.text
        assert ok(await b.get(f"/v1/projects/{project}/knowledge"))["indexed"] is False
    assert fake.calls == 0  # A's credentials were never used for B
