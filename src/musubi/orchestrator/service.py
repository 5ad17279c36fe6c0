"""Runs in the database: create (with its estimate and budget check), read, approve,
cancel, and the numbered event log. Every function runs in the caller's tenant scope."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.principal import Principal
from musubi.audit.service import record
from musubi.errors import Conflict, InvalidInput
from musubi.orchestrator.models import ACTIVE, Run, RunEvent, RunStep
from musubi.storage.base import new_id, utcnow
from musubi.storage.queries import get_one

__all__ = [
    "add_event",
    "approve_run",
    "cancel_run",
    "create_run",
    "events_after",
    "feature_slug",
    "get_run",
    "list_runs",
    "past_output",
    "run_out",
    "steps_of",
]


def feature_slug(idea: str, feature: str | None) -> str:
    """``feature`` checked, or a slug of the idea's first words (``export-orders-csv``)."""
    if feature is not None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", feature):
            raise InvalidInput(
                "feature: lower-case letters, digits, '.', '_' or '-' (at most 64)",
                field="feature",
            )
        return feature
    words = re.findall(r"[a-z0-9]+", idea.lower())[:4]
    return "-".join(words)[:64] or "feature"


async def add_event(s: AsyncSession, run_id: str, type_: str, **data: Any) -> int:
    last = await s.scalar(select(func.max(RunEvent.seq)).where(RunEvent.run_id == run_id))
    seq = int(last or 0) + 1
    s.add(RunEvent(run_id=run_id, seq=seq, type=type_, data=data))
    await s.flush()
    return seq


async def create_run(
    s: AsyncSession,
    principal: Principal,
    *,
    project_id: str,
    idea: str,
    feature: str,
    steps: tuple[str, ...],
    estimate: dict[str, Any],
    budget: float | None,
    auto_approve: bool,
    models: dict[str, str],
    max_output_tokens: int | None = None,
) -> Run:
    busy = await s.scalar(
        select(Run.id).where(
            Run.project_id == project_id, Run.feature == feature, Run.status.in_(ACTIVE)
        )
    )
    if busy is not None:
        raise Conflict(
            f"run {busy!r} is already writing feature {feature!r} of this project; "
            "cancel it or wait for it",
            run_id=busy,
        )
    if budget is not None and estimate["cost"] > budget:
        raise Conflict(
            f"the estimated cost {estimate['cost']:.6f} USD exceeds the budget {budget:.6f} USD",
            field="budget",
            estimate=estimate,
        )
    run = Run(
        id=new_id("run"),
        project_id=project_id,
        idea=idea,
        feature=feature,
        status="queued",
        auto_approve=auto_approve,
        budget=budget,
        estimate=estimate,
        models=models,
        max_output_tokens=max_output_tokens,
        key_id=principal.key_id,
        user_id=principal.user_id,
        team_id=principal.project_team_id,
        key_project_id=principal.project_id,
        actor=principal.actor,
    )
    s.add(run)
    await s.flush()
    for seq, name in enumerate(steps, start=1):
        s.add(RunStep(run_id=run.id, seq=seq, name=name))
    await add_event(s, run.id, "run.created", steps=list(steps), estimate=estimate)
    await record(s, "orchestrator.run.created", run.id, detail={"project_id": project_id})
    return run


async def past_output(s: AsyncSession, steps: tuple[str, ...], last: int = 20) -> dict[str, int]:
    """Mean output tokens per attempt of each step's last ``last`` finished steps in this
    tenant (what the estimate expects a step to write, once there is history)."""
    out: dict[str, int] = {}
    for name in dict.fromkeys(n.partition(":")[0] for n in steps):  # implement:TASK-1
        rows = (
            await s.execute(
                select(RunStep.output_tokens, RunStep.attempts)
                .where(
                    or_(RunStep.name == name, RunStep.name.like(f"{name}:%")),
                    RunStep.status == "done",
                    RunStep.attempts > 0,
                )
                .order_by(RunStep.finished_at.desc())
                .limit(last)
            )
        ).all()
        if rows:
            out[name] = max(1, round(sum(t / a for t, a in rows) / len(rows)))
    return out


async def get_run(s: AsyncSession, run_id: str, *, lock: bool = False) -> Run:
    return await get_one(s, Run, run_id, "run", lock=lock)


async def list_runs(s: AsyncSession, project_id: str, limit: int = 100) -> list[Run]:
    query = (
        select(Run)
        .where(Run.project_id == project_id)
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(limit)
    )
    return list((await s.scalars(query)).all())


async def steps_of(s: AsyncSession, run_id: str) -> list[RunStep]:
    query = select(RunStep).where(RunStep.run_id == run_id).order_by(RunStep.seq)
    return list((await s.scalars(query)).all())


async def approve_run(s: AsyncSession, run: Run) -> Run:
    if run.status != "awaiting_approval":
        raise Conflict(f"run {run.id!r} is {run.status}, not awaiting approval")
    run.status = "queued"
    await add_event(s, run.id, "run.approved")
    await record(s, "orchestrator.run.approved", run.id)
    return run


async def cancel_run(s: AsyncSession, run: Run) -> Run:
    if run.status not in ACTIVE:
        raise Conflict(f"run {run.id!r} is already {run.status}")
    run.status = "cancelled"
    run.updated_at = utcnow()
    await add_event(s, run.id, "run.cancelled")
    await record(s, "orchestrator.run.cancelled", run.id)
    return run


async def events_after(s: AsyncSession, run_id: str, after: int) -> list[RunEvent]:
    query = (
        select(RunEvent)
        .where(RunEvent.run_id == run_id, RunEvent.seq > after)
        .order_by(RunEvent.seq)
    )
    return list((await s.scalars(query)).all())


def run_out(run: Run, steps: list[RunStep] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": run.id,
        "tenant_id": run.tenant_id,
        "project_id": run.project_id,
        "idea": run.idea,
        "feature": run.feature,
        "status": run.status,
        "auto_approve": run.auto_approve,
        "budget": run.budget,
        "estimate": run.estimate,
        "cost": round(run.cost, 8),
        "error": run.error,
        "created_at": run.created_at.isoformat(),
    }
    if steps is not None:
        estimated = {e["step"]: e for e in (run.estimate or {}).get("steps", [])}
        out["steps"] = [
            {
                "name": st.name,
                "status": st.status,
                "model": st.model,
                "attempts": st.attempts,
                "prompt_hash": st.prompt_hash,
                "input_tokens": st.input_tokens,
                "output_tokens": st.output_tokens,
                "cost": round(st.cost, 8),
                "output_path": st.output_path,
                "diagnostics": st.diagnostics or [],
                "raw": st.raw if st.status == "failed" else None,
                "estimated": {
                    k: estimated.get(st.name, {}).get(k)
                    for k in ("input_tokens", "output_tokens", "cost")
                },
                "estimate_error": _error_of(estimated.get(st.name), st),
            }
            for st in steps
        ]
    return out


def _error_of(est: dict[str, Any] | None, st: RunStep) -> dict[str, float] | None:
    """How far the estimate was from what the step really used, per attempt, as a
    fraction of the actual (+0.25: the estimate was 25 % high); None before any answer."""
    if not est or st.attempts == 0:
        return None
    actual = {
        "input_tokens": st.input_tokens / st.attempts,
        "output_tokens": st.output_tokens / st.attempts,
        "cost": st.cost / st.attempts,
    }
    return {k: round((float(est.get(k) or 0) - v) / v, 4) for k, v in actual.items() if v}
