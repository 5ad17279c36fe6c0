"""A run on a real model on the CPU: the offline model the gateway serves with no provider
configured (SmolLM2-135M). It is far too small to write EARS requirements; what must hold
is that the run ends cleanly, ``failed`` with the validator's messages and the model's raw
answer kept, after the bounded repairs, and that nothing crashes or is written."""

from __future__ import annotations

import time

import httpx
import pytest

from musubi.gateway.providers.local import INSTALL, MODEL_NAME, model_path
from tests.api.helpers import ok
from tests.conftest import Api
from tests.orchestrator.conftest import read_events

if model_path() is None:
    pytest.skip(f"the offline model is not installed: {INSTALL}", allow_module_level=True)


@pytest.mark.slow
async def test_a_run_on_the_offline_model_ends_cleanly(api: Api, owner: httpx.AsyncClient) -> None:
    assert ok(await owner.get("/v1/gateway/providers"))["items"] == []  # nothing configured
    # a CPU shared with other work answers far slower than a laptop: the tenant gives the
    # model time (the gateway's default is 120 s per call)
    ok(await owner.put("/v1/gateway/config", json={"timeout_s": 900}))
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    (api.state.settings.effective_repos_root / tenant / "shop").mkdir(parents=True)
    project = ok(await owner.post("/v1/projects", json={"name": "shop", "repo_path": "shop"}), 201)
    body = {
        "idea": "Export orders as CSV",
        "feature": "export",
        "steps": ["requirements"],
        "max_output_tokens": 96,
    }
    est = ok(await owner.post(f"/v1/projects/{project['id']}/runs/estimate", json=body))
    assert est["steps"][0]["model"] == MODEL_NAME and est["cost"] == 0
    started = time.perf_counter()
    run = ok(await owner.post(f"/v1/projects/{project['id']}/runs", json=body), 201)
    events = await read_events(owner, run["id"], within=2700)
    wall = time.perf_counter() - started
    shown = ok(await owner.get(f"/v1/runs/{run['id']}"))
    step = shown["steps"][0]
    print(f"offline model run: {wall:.1f} s, {step['attempts']} attempts, {shown['status']}")
    assert events[-1]["type"] in ("run.succeeded", "run.failed"), events[-1]
    assert "the model call failed" not in str(events[-1].get("error")), events[-1]
    attempts = [e for e in events if e["type"] == "step.attempt"]
    assert 1 <= len(attempts) <= 3 and step["model"] == MODEL_NAME
    if shown["status"] == "failed":
        assert step["raw"] is not None and step["diagnostics"]
        assert all(d["message"] for d in step["diagnostics"])
        assert not (api.state.settings.effective_repos_root / tenant / "shop/storage").exists()


async def test_a_prompt_over_the_models_context_is_refused_before_any_call(
    api: Api, owner: httpx.AsyncClient
) -> None:
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    repo = api.state.settings.effective_repos_root / tenant / "shop"
    (repo / "steering" / "prompts").mkdir(parents=True)
    # the project's own prompt for the step, far over the offline model's 8192 tokens
    prompt = "Write requirements for {idea}.\n" + "Context paragraph about orders. " * 3000
    (repo / "steering" / "prompts" / "requirements.md").write_text(prompt)
    project = ok(await owner.post("/v1/projects", json={"name": "shop", "repo_path": "shop"}), 201)
    body = {"idea": "Export orders as CSV", "steps": ["requirements"]}
    est = ok(await owner.post(f"/v1/projects/{project['id']}/runs/estimate", json=body))
    assert est["steps"][0]["fits"] is False and est["steps"][0]["input_tokens"] > 8192
    r = await owner.post(f"/v1/projects/{project['id']}/runs", json=body)
    assert r.status_code == 409, r.text
    assert "does not fit the context window of smollm2-135m" in r.json()["error"]["message"]
    assert ok(await owner.get(f"/v1/projects/{project['id']}/runs"))["items"] == []
    await api.state.ledger.flush()
    assert ok(await owner.get("/v1/usage"))["items"] == []  # no call reached the model
