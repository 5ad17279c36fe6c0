"""The LLM verification pass of trace recovery, through a real server's gateway as a key.

The upstream is a scripted fake in the OpenAI format that plays the judge: it reads the
requirement and the numbered files from the prompt and answers with the numbers of the
files its table says implement it. Pinned: what the judge is shown (the requirement, each
candidate's outline), that its numbers map back to files (links dropped and added), the
estimate and the budget refusal before any call, an unreadable answer and an upstream
5xx falling back to the cut's suggestions, and the usage landing in the tenant's ledger.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from tests.api.helpers import ok
from tests.conftest import LOOPBACK_FAKES, Api
from tests.gateway.fakes import FakeUpstream, serve
from tests.sdd.recovery.test_recovery_recover import FILES, REQUIREMENTS, _project

from musubi.errors import InvalidInput
from musubi.gateway.tokens import count_text
from musubi.orchestrator.llm import GatewayModel, blocking_chat, choose_model
from musubi.sdd.recovery import RecoveryConfig, recover
from musubi.sdd.recovery.verify import JudgeConfig, VerifyResult, candidates, outline, verify

MODEL = "gpt-4o-mini"
TEXTS = {f.path: f.text for f in FILES}
# the judge's verdicts: the data record is not a link; the string helper is
JUDGE = {
    "REQ-BILL-001": {"src/billing/invoice.py"},
    "REQ-AUTH-001": {"src/auth/login.py"},
    "REQ-MAIL-001": {"src/mail/reminder.py", "src/util/strings.py"},
    "REQ-BILL-002": {"src/mail/reminder.py"},  # of the project on disk (the CLI test)
}


@dataclass
class Judge(FakeUpstream):
    unreadable: set[str] = field(default_factory=set)  # requirements answered in prose
    prompts: list[str] = field(default_factory=list)

    async def chat(self, request: Request) -> Response:
        body, failed = await self._enter(request, "chat")
        if failed:
            return failed
        prompt = body["messages"][-1]["content"]
        self.prompts.append(prompt)
        rid = re.search(r"Requirement (\S+):", prompt)
        assert rid is not None
        shown = re.findall(r"^\[(\d+)\] (\S+)$", prompt, re.M)
        numbers = [int(n) for n, path in shown if path in JUDGE[rid.group(1)]]
        text = json.dumps({"links": numbers})
        if rid.group(1) in self.unreadable:
            text = "The first one, probably."
        message = {"role": "assistant", "content": text}
        usage = {"prompt_tokens": 300, "completion_tokens": 10, "total_tokens": 310}
        return JSONResponse(
            {
                "id": "chatcmpl-judge",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            }
        )


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_ollama_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_GATEWAY_DETECT_OLLAMA", "0")


@pytest.fixture
async def judge(api: Api, owner: httpx.AsyncClient) -> AsyncIterator[Judge]:
    fake = Judge(name="judge")
    async with serve(fake) as url:
        body = {"provider": "openai", "api_key": "sk-test-openai-0001", "base_url": f"{url}/v1"}
        ok(await owner.put("/v1/gateway/providers/openai", json=body))
        yield fake


async def run_pass(api: Api, cfg: JudgeConfig | None = None) -> VerifyResult:
    """recover() with a low cut (the data record passes it), then the judge, in a worker
    thread as the owner's key through the server's gateway."""
    state = api.state
    gateway = state.gateway
    assert gateway is not None
    principal = await state.auth.authenticate(api.owner_key)
    info = choose_model(await gateway.table(principal.tenant_id), "trace-verify", MODEL)
    chat = blocking_chat(
        GatewayModel(gateway, principal, state.quotas, state.ledger), asyncio.get_running_loop()
    )
    result = recover(REQUIREMENTS, FILES, RecoveryConfig(threshold=0.5))
    cut = {(s.requirement, s.path) for s in result.suggestions}
    assert ("REQ-BILL-001", "src/billing/records.py") in cut  # the link the judge drops
    return await asyncio.to_thread(
        verify,
        result,
        REQUIREMENTS,
        TEXTS,
        chat,
        info.name,
        lambda t: count_text(t, info),
        info.cost,
        cfg or JudgeConfig(candidates=3),
    )


def links(result: VerifyResult) -> set[tuple[str, str]]:
    return {(s.requirement, s.path) for s in result.suggestions}


async def test_the_judge_keeps_drops_and_adds_links(
    api: Api, owner: httpx.AsyncClient, judge: Judge
) -> None:
    out = await run_pass(api)
    ids = {r.id for r in REQUIREMENTS}
    assert links(out) == {(r, p) for r, paths in JUDGE.items() for p in paths if r in ids}
    assert out.dropped == [("REQ-BILL-001", "src/billing/records.py")]
    assert out.added == [("REQ-MAIL-001", "src/util/strings.py")]  # below the cut
    assert out.fallback == [] and out.stopped == ""
    assert out.requests == 3 == judge.calls
    assert out.input_tokens == 900 and out.output_tokens == 30 and out.cost > 0
    assert out.estimate["requests"] == 3 and out.estimate["cost"] >= out.cost
    # what the judge saw: the requirement and each candidate's outline, no method bodies
    bill = next(p for p in judge.prompts if "REQ-BILL-001" in p)
    assert "when an order is paid" in bill.lower()
    assert "[1] src/billing/invoice.py" in bill and "def create_invoice" in bill
    assert "return InvoiceRecord(order.total)" not in bill
    await api.state.ledger.flush()
    usage = {u["model"]: u for u in ok(await owner.get("/v1/usage"))["items"]}
    assert usage[MODEL]["requests"] == 3


async def test_the_budget_is_checked_before_any_call(
    api: Api, owner: httpx.AsyncClient, judge: Judge
) -> None:
    with pytest.raises(InvalidInput, match="above the budget"):
        await run_pass(api, JudgeConfig(candidates=3, max_cost=1e-9))
    assert judge.calls == 0


async def test_unreadable_answers_and_upstream_failures_keep_the_cut(
    api: Api, owner: httpx.AsyncClient, judge: Judge
) -> None:
    judge.unreadable = {"REQ-BILL-001"}
    out = await run_pass(api)
    assert out.fallback == ["REQ-BILL-001"]
    assert ("REQ-BILL-001", "src/billing/records.py") in links(out)  # the cut's, unjudged

    judge.fail_every, judge.fail_status = 1, 502
    before = judge.calls
    out = await run_pass(api, JudgeConfig(candidates=4))  # new prompts: not in the cache
    assert out.stopped.startswith("upstream error") and out.requests == 0
    assert judge.calls > before
    result = recover(REQUIREMENTS, FILES, RecoveryConfig(threshold=0.5))
    assert links(out) == {(s.requirement, s.path) for s in result.suggestions}
    assert sorted(out.fallback) == sorted(r.id for r in REQUIREMENTS)


def test_the_outline_keeps_declarations_and_drops_bodies() -> None:
    java = """package a.b;
import java.util.List;
/** Inserts a tourist card. */
public class CardAgent {
    private int id;
    /** Save the card. */
    public void insert(Card c) {
        if (c == null) {
            throw new IllegalArgumentException();
        }
        db.save(c);
    }
}
"""
    text = outline(java)
    assert text.splitlines() == [
        "/** Inserts a tourist card. */",
        "public class CardAgent {",
        "private int id;",
        "/** Save the card. */",
        "public void insert(Card c) {",
        "}",
    ]
    cut = outline("class A:\n    x = 1\n" + "    # note\n" * 100, limit=20)
    assert cut == "class A:\n# note\n# no\n…"


async def test_the_cli_verifies_a_projects_links_as_a_key(
    api: Api, owner: httpx.AsyncClient, judge: Judge, tmp_path: Path
) -> None:
    """``musubi trace recover --verify``: the gateway in the CLI's process, as the key."""
    root = _project(tmp_path / "project")
    settings = api.state.settings
    env = {
        **os.environ,
        "MUSUBI_API_KEY": api.owner_key,
        "MUSUBI_HOME": str(settings.home),
        "MUSUBI_DATABASE_URL": settings.database_url or "",
        "MUSUBI_EGRESS_ALLOW": LOOPBACK_FAKES,
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
    }
    musubi = str(Path(sys.executable).parent / "musubi")
    args = ["trace", "recover", "-C", str(root), "--json", "--threshold", "0.5"]
    proc = await asyncio.create_subprocess_exec(
        musubi, *args, "--verify", "--model", MODEL, stdout=-1, stderr=-1, stdin=-3, env=env
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    pairs = {(row["requirement"], row["path"]) for row in json.loads(out)}
    assert pairs == {
        ("REQ-BILL-001", "src/billing/invoice.py"),
        ("REQ-BILL-002", "src/mail/reminder.py"),
    }
    assert "verify gpt-4o-mini: estimate 2 request(s)" in err.decode()
    assert judge.calls == 2


def test_every_link_of_the_cut_is_shown_to_the_judge() -> None:
    """Judging only the k best would drop the cut's other links unseen."""
    result = recover(REQUIREMENTS, FILES, RecoveryConfig(threshold=0.5))
    assert candidates(result, "REQ-BILL-001", JudgeConfig(candidates=1)) == [
        "src/billing/invoice.py",
        "src/billing/records.py",  # second by score, in the cut: shown though k is 1
    ]
    assert candidates(result, "REQ-BILL-001", JudgeConfig(candidates=0)) == [
        s.path for s in result.suggestions if s.requirement == "REQ-BILL-001"
    ]
