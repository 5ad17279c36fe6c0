"""The ``ChatNotifier`` kind and the chat commands Slack and Teams share.

A notifier posts a :class:`Notice` (run finished, gate failed, approval needed, quota at
80%, audit verification failed) to a project's channel in the vendor's card format.
Notifiers are a pluggable kind (:data:`CHAT_NOTIFIERS`, entry points
``musubi.chat_notifiers``: ``slack``, ``teams``); a plugin's notifier receives the same
notices, while the slash command, the bot endpoint and the buttons stay Slack's and
Teams' own routes (their request signatures are vendor-specific). The
commands (``status``, ``trace <REQ>``, ``approve <run>``, and ``reject <run>`` behind the
buttons) act on the project the chat integration belongs to. Approving through chat is
limited to the chat user ids listed in the integration's ``approvers`` option and audited
with the actor ``slack:<user>`` / ``teams:<user>``; anyone else is told so.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.context import Actor, bind_actor
from musubi.errors import MusubiError, PluginError
from musubi.integrations.kind import Configurable
from musubi.integrations.models import Integration, OutboxItem
from musubi.kinds import Kind
from musubi.storage.database import Database

if TYPE_CHECKING:
    from musubi.egress.policy import EgressPolicy

__all__ = [
    "CHAT_NOTIFIERS",
    "ChatNotifier",
    "CommandResult",
    "Notice",
    "notifier_class",
    "run_command",
]


@dataclass(frozen=True)
class Notice:
    """Something a project's channel should hear about."""

    kind: str  # run_finished | gate_failed | approval_needed | quota_80 | audit_failed
    title: str
    text: str
    run_id: str | None = None  # approval_needed: the buttons act on it
    facts: dict[str, str] = field(default_factory=dict)


class ChatNotifier(Configurable, ABC):
    """Posts notices to one channel. A subclass is an implementation of the kind (its
    entry point's name is its ``vendor``), configured through the class attributes and
    checks of :class:`~musubi.integrations.kind.Configurable` and built by
    :meth:`from_config`."""

    target_help: ClassVar[str] = "the channel to post to"

    @classmethod
    @abstractmethod
    def from_config(
        cls,
        egress: EgressPolicy,
        *,
        base_url: str,
        target: str,
        secret: dict[str, str],
        options: dict[str, Any],
    ) -> ChatNotifier:
        """The notifier of a configured integration; its connections must pass
        ``egress`` (the tenant's policy: :func:`musubi.egress.clients.egress_client`)."""

    @abstractmethod
    async def notify(self, notice: Notice) -> None:
        """Post ``notice``; raise :class:`~musubi.errors.UpstreamError` when refused."""

    async def aclose(self) -> None:
        """Release connections."""


CHAT_NOTIFIERS: Kind[ChatNotifier] = Kind("chat_notifiers", ChatNotifier)
"""Chat notifiers: an entry point of ``musubi.chat_notifiers`` names a
:class:`ChatNotifier` subclass, built with :meth:`ChatNotifier.from_config`."""


def notifier_class(name: str) -> type[ChatNotifier]:
    """The notifier class called ``name``: :class:`~musubi.errors.InvalidInput` listing
    the installed ones if there is none, :class:`PluginError` if it is not a subclass."""
    found: Any = CHAT_NOTIFIERS.load(name)
    if not (isinstance(found, type) and issubclass(found, ChatNotifier)):
        raise PluginError(
            f"{CHAT_NOTIFIERS.group} entry point {name!r} is {found!r}, not a ChatNotifier"
        )
    return found


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
            Integration.project_id == project_id, Integration.kind.in_(_tracker_names())
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


def _tracker_names() -> list[str]:
    from musubi.integrations.tracker import TRACKERS

    return TRACKERS.names()
