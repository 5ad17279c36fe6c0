"""The ``ChatNotifier`` kind and the chat commands Slack and Teams share.

A notifier posts a :class:`Notice` (run finished, gate failed, approval needed, quota at
80%, audit verification failed) to a project's channel in the vendor's card format. The
commands (``status``, ``trace <REQ>``, ``approve <run>``, and ``reject <run>`` behind the
buttons) act on the project the chat integration belongs to. Approving through chat is
limited to the chat user ids listed in the integration's ``approvers`` option and audited
with the actor ``slack:<user>`` / ``teams:<user>``; anyone else is told so.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.errors import MusubiError
from musubi.integrations.models import Integration, OutboxItem
from musubi.storage.database import Database
from musubi.tenancy.context import Actor, bind_actor

__all__ = ["ChatNotifier", "CommandResult", "Notice", "run_command"]

CHATS = ("slack", "teams")  # every other integration is a tracker (built-in or plugin)


@dataclass(frozen=True)
class Notice:
    """Something a project's channel should hear about."""

    kind: str  # run_finished | gate_failed | approval_needed | quota_80 | audit_failed
    title: str
    text: str
    run_id: str | None = None  # approval_needed: the buttons act on it
    facts: dict[str, str] = field(default_factory=dict)


class ChatNotifier(ABC):
    """Posts notices to one channel."""

    @abstractmethod
    async def notify(self, notice: Notice) -> None:
        """Post ``notice``; raise :class:`~musubi.errors.UpstreamError` when refused."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


@dataclass(frozen=True)
class CommandResult:
    text: str
    ok: bool = True
    run_id: str | None = None  # approved or rejected: the orchestrator should look again


HELP = "Commands: `status`, `trace <REQ-ID>`, `approve <run id>`"


async def run_command(
    db: Database,
    integration: Integration,
    text: str,
    user: str,
    *,
    root: Path | None,
) -> CommandResult:
    """Run one chat command for ``integration``'s project, bound to its tenant."""
    words = text.strip().split()
    if not words:
        return CommandResult(HELP)
    verb, args = words[0].lower(), words[1:]
    if verb == "status":
        async with db.read() as s:
            return CommandResult(await _status(s, integration.project_id))
    if verb == "trace" and len(args) == 1:
        return CommandResult(_trace(root, args[0]))
    if verb in ("approve", "reject") and len(args) == 1:
        return await _decide(db, integration, verb, args[0], user)
    return CommandResult(f"Unknown command {text.strip()!r}. {HELP}", ok=False)


async def _status(s: AsyncSession, project_id: str) -> str:
    from musubi.orchestrator.models import Run

    lines = []
    rows = await s.scalars(
        select(Integration).where(
            Integration.project_id == project_id, Integration.kind.not_in(CHATS)
        )
    )
    for row in rows:
        counts = dict(
            (
                await s.execute(
                    select(OutboxItem.status, func.count())
                    .where(OutboxItem.integration_id == row.id)
                    .group_by(OutboxItem.status)
                )
            ).all()
        )
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing queued"
        error = f" — {row.last_error}" if row.last_error else ""
        lines.append(f"*{row.kind}* {row.target}: {row.state}{error} ({shown})")
    runs = dict(
        (
            await s.execute(
                select(Run.status, func.count())
                .where(Run.project_id == project_id)
                .group_by(Run.status)
            )
        ).all()
    )
    lines.append("runs: " + (", ".join(f"{k} {v}" for k, v in sorted(runs.items())) or "none"))
    return "\n".join(lines)


def _trace(root: Path | None, item_id: str) -> str:
    from musubi.sdd.project import load_project

    if root is None:
        return "This project has no repository on the server."
    project = load_project(root)
    req = project.requirement(item_id)
    if req is None:
        return f"No requirement {item_id} in this project."
    tracker = req.extra.get("Tracker")
    tasks = [t.id for t in project.tasks if item_id in t.requirements]
    lines = [f"*{req.id}* {req.title} — {req.status or 'no status'}"]
    if tracker:
        lines.append(f"tracker: {tracker}")
    lines.append("tasks: " + (", ".join(tasks) or "none"))
    return "\n".join(lines)


async def _decide(
    db: Database, integration: Integration, verb: str, run_id: str, user: str
) -> CommandResult:
    from musubi.orchestrator import service as runs

    approvers = integration.options.get("approvers") or []
    if user not in approvers:
        return CommandResult(
            f"You ({user}) may not {verb} runs from chat: ask an admin to add you to the "
            "integration's approvers.",
            ok=False,
        )
    with bind_actor(Actor(f"{integration.kind}:{user}")):
        try:
            async with db.transaction() as s:
                run = await runs.get_run(s, run_id, lock=True)
                if run.project_id != integration.project_id:
                    return CommandResult(f"No run {run_id} in this project.", ok=False)
                if verb == "approve":
                    await runs.approve_run(s, run)
                else:
                    await runs.cancel_run(s, run)
        except MusubiError as exc:
            return CommandResult(exc.message, ok=False)
    done = "approved" if verb == "approve" else "rejected"
    return CommandResult(f"Run {run_id} {done} by {user}.", run_id=run_id)


def notice_facts(notice: Notice) -> list[tuple[str, str]]:
    return list(notice.facts.items())


def as_dict(notice: Notice) -> dict[str, Any]:
    return {"kind": notice.kind, "title": notice.title, "text": notice.text, "run": notice.run_id}
