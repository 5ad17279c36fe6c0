"""Trace-link recovery of a project on the server: requirement -> code links nobody wrote.

``POST /v1/projects/{id}/sdd/trace/recover`` runs
:func:`musubi.sdd.recovery.project.recover_project` on the project's repository, as
``musubi trace recover`` does on a checkout. It is a read
of the project (``projects:read``, like the other SDD routes); another tenant's project is
404. Options:

- ``mode``: ``cut`` (the links that stand out, per requirement) or ``ranked`` (each
  requirement's ``top_k`` best files, whether or not they pass the cut);
- ``dense``: mix in the server's embedder (``knowledge_embedder``) where the requirements'
  language allows (docs/trace-recovery.md, "Dense similarity");
- ``verify``: an LLM judges each requirement's best candidates (LiSSA), through the gateway
  as this key, so it also needs ``models:use``, and the tenant's models, quotas and usage
  ledger apply; the pass is priced first and refused (422) above ``max_cost``; audited
  ``sdd.trace.verify``.

Every link comes with its signals: the standardised score, the lexical(+dense) similarity,
the dense cosine, the shared terms (evidence) and the neighbour it was lifted by.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from musubi.api.deps import Ctx, require
from musubi.api.routers.knowledge import embedder_of
from musubi.api.routers.sdd import project_repo
from musubi.audit.service import record
from musubi.errors import InvalidInput, MusubiError
from musubi.storage.queries import get_one
from musubi.tenancy.models import Project

router = APIRouter(prefix="/v1/projects/{project_id}/sdd/trace", tags=["sdd"])


class VerifyIn(BaseModel):
    """The LLM verification pass (docs/trace-recovery.md, "LLM verification")."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(
        default=None,
        description="Model or alias; default: the routing of musubi/trace-verify, else 'default'",
    )
    candidates: int = Field(default=5, ge=1, le=20, description="Files judged per requirement")
    max_cost: float | None = Field(
        default=None, ge=0, description="USD: refused (422) when the estimate is above it"
    )


class RecoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requirements: list[str] = Field(
        default_factory=list, description="Only these requirement ids (default: all)"
    )
    mode: Literal["cut", "ranked"] = Field(
        default="cut",
        description="cut: the links that stand out; ranked: each requirement's top_k files",
    )
    threshold: float | None = Field(
        default=None, description="cut: standardised score a link must reach (default 1.75)"
    )
    top_k: int | None = Field(
        default=None, ge=1, le=100, description="At most this many links per requirement"
    )
    dense: bool = Field(
        default=False,
        description="Mix in the server's embedder where the requirements' language allows",
    )
    verify: VerifyIn | None = Field(
        default=None, description="Let a model judge the candidates (needs models:use)"
    )


@dataclass
class _Judge:
    """What the worker thread needs to run the judge through the gateway as the key."""

    chat: Callable[[dict[str, Any]], Any]
    model: str
    count: Callable[[str], int]
    price: Callable[[int, int], float]


def _recover(
    root: Path, body: RecoverIn, embedder: Callable[[], Any] | None, judge: _Judge | None
) -> dict[str, Any]:
    from musubi.sdd.recovery.project import code_files, recover_project
    from musubi.sdd.recovery.recover import RecoveryConfig

    config = RecoveryConfig()
    if body.threshold is not None:
        config = replace(config, threshold=body.threshold)
    if body.top_k is not None and body.mode == "cut":
        config = replace(config, max_links=body.top_k)
    model = embedder() if embedder is not None else None
    result, requirements = recover_project(root, config, body.requirements, embedder=model)
    known = {r.id for r in requirements}
    missing = [rid for rid in body.requirements if rid not in known]
    if missing:
        raise InvalidInput(f"unknown requirement(s): {', '.join(missing)}", field="requirements")
    wanted = [r for r in requirements if not body.requirements or r.id in body.requirements]
    if body.mode == "ranked":
        result.suggestions = _ranked(result, [r.id for r in wanted], body.top_k or 5)
    verified: dict[str, Any] | None = None
    if judge is not None and body.verify is not None:
        from musubi.sdd.recovery.verify import JudgeConfig, verify

        texts = {f.path: f.text for f in code_files(root)}
        cfg = JudgeConfig(candidates=body.verify.candidates, max_cost=body.verify.max_cost)
        out = verify(result, wanted, texts, judge.chat, judge.model, judge.count, judge.price, cfg)
        result.suggestions = out.suggestions
        verified = {
            "model": judge.model,
            "estimate": out.estimate,
            "requests": out.requests,
            "input_tokens": out.input_tokens,
            "output_tokens": out.output_tokens,
            "cost": round(out.cost, 8),
            "dropped": [list(link) for link in out.dropped],
            "added": [list(link) for link in out.added],
            "fallback": out.fallback,
            "stopped": out.stopped,
        }
    links: list[dict[str, Any]] = []
    shown: dict[str, int] = {}
    for s in result.suggestions:
        count = shown.get(s.requirement, 0)
        if body.top_k is not None and count >= body.top_k:
            continue
        shown[s.requirement] = count + 1
        links.append(s.to_dict())
    return {
        "language": result.language,
        "requirements": len(wanted),
        "files": len({p for row in result.standardised.values() for p in row}),
        "mode": body.mode,
        "dense": {
            "requested": body.dense,
            "used": result.dense_used,
            "embedder": getattr(model, "name", None),
            "weight": config.dense_weight if result.dense_used else 0.0,
        },
        "links": links,
        "verify": verified,
    }


def _ranked(result: Any, rids: list[str], k: int) -> list[Any]:
    """Each requirement's ``k`` best files as suggestions, whether or not they pass the cut."""
    from musubi.sdd.recovery.recover import Suggestion

    cut = {(s.requirement, s.path): s for s in result.suggestions}
    out = []
    for rid in rids:
        for path, score in result.ranked(rid)[:k]:
            kept = cut.get((rid, path))
            dense = result.dense.get(rid, {}).get(path) if result.dense_used else None
            sim = result.similarity.get(rid, {}).get(path, 0.0)
            out.append(kept or Suggestion(rid, path, score, sim, (), dense=dense))
    return out


async def _judge(ctx: Ctx, project: Project, verify_in: VerifyIn) -> _Judge:
    """The gateway as this key, for the judge: its model, token counter and price."""
    from musubi.gateway.tokens import count_text
    from musubi.orchestrator.llm import GatewayModel, blocking_chat, choose_model

    ctx.check("models:use", team_id=project.team_id, project_id=project.id)
    gateway = ctx.state.gateway
    if gateway is None:
        raise MusubiError("the gateway is not running in this process")
    info = choose_model(await gateway.table(ctx.tenant_id), "trace-verify", verify_in.model)
    model = GatewayModel(gateway, ctx.principal, ctx.state.quotas, ctx.state.ledger)
    return _Judge(
        blocking_chat(model, asyncio.get_running_loop()),
        info.name,
        lambda text: count_text(text, info),
        info.cost,
    )


@router.post("/recover", summary="Suggest requirement -> code links with their signals")
async def recover(
    project_id: str,
    ctx: Annotated[Ctx, Depends(require("projects:read", "project"))],
    body: Annotated[RecoverIn | None, Body()] = None,
) -> dict[str, Any]:
    body = body or RecoverIn()
    root = await project_repo(ctx, project_id)
    judge = None
    if body.verify is not None:
        async with ctx.db.read() as s:
            project = await get_one(s, Project, project_id, "project")
        judge = await _judge(ctx, project, body.verify)
    embedder = embedder_of(ctx) if body.dense else None
    out = await asyncio.to_thread(_recover, root, body, embedder, judge)
    if out["verify"] is not None:
        keep = ("model", "requests", "input_tokens", "output_tokens", "cost", "stopped")
        async with ctx.db.transaction() as s:
            detail = {k: out["verify"][k] for k in keep}
            await record(s, "sdd.trace.verify", project_id, detail=detail)
    return out
