"""Both directions of a sync, decided in the database.

* :func:`plan_sync` (MUSUBI → tracker): reads the project's requirements and tasks, and
  for every item that changed since it was last in step with its issue writes one row in
  the outbox, in the same transaction as the audit event of the sync. Nothing leaves the
  process here: :mod:`musubi.integrations.outbox` delivers. Running it twice queues
  nothing the second time.
* :func:`apply_remote` (tracker → MUSUBI): an issue as a webhook or a reconcile reports it.
  A change on the tracker only is written into the spec block (status through the
  integration's status map, title); a change on both sides since the last sync becomes a
  conflict on the link, shown by the API and CLI, and neither side is overwritten.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.service import record
from musubi.errors import InvalidInput
from musubi.integrations.models import Integration, IssueLink, OutboxItem
from musubi.integrations.tracker import Issue, IssueDraft
from musubi.sdd.models import SpecItem
from musubi.sdd.project import Project as SddProject
from musubi.sdd.project import load_project
from musubi.storage.base import utcnow
from musubi.tenancy.models import Project

__all__ = [
    "CLOSED_STATUSES",
    "TRACKER_FIELD",
    "LocalItem",
    "SyncResult",
    "apply_remote",
    "draft_hash",
    "local_items",
    "plan_sync",
    "project_root",
    "remote_snapshot",
    "write_tracker_keys",
]

TRACKER_FIELD = "Tracker"  # the spec block field holding the issue key
CLOSED_STATUSES = frozenset({"done", "implemented", "verified", "closed", "completed", "complete"})
PENDING = ("queued", "running", "parked", "conflict")


@dataclass(frozen=True)
class LocalItem:
    item_id: str
    file: str
    status: str | None
    draft: IssueDraft


@dataclass
class SyncResult:
    queued: int = 0
    unchanged: int = 0
    conflicts: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _body(item: SpecItem) -> str:
    lines: list[str] = []
    statement = getattr(item, "statement", "")
    if statement:
        lines.append(statement)
    criteria = getattr(item, "acceptance_criteria", [])
    if criteria:
        lines += ["", "Acceptance criteria:", *(f"- {c}" for c in criteria)]
    reqs = getattr(item, "requirements", [])
    if reqs:
        lines += ["", "Requirements: " + ", ".join(reqs)]
    lines += ["", f"MUSUBI: {item.id} ({item.file})"]
    return "\n".join(lines).strip()


def _draft(item: SpecItem) -> IssueDraft:
    status = getattr(item, "status", None) or ""
    return IssueDraft(
        item_id=item.id,
        title=f"{item.id}: {item.title}" if item.title else item.id,
        body=_body(item),
        closed=status.strip().lower() in CLOSED_STATUSES,
    )


def local_items(root: Path) -> tuple[SddProject, list[LocalItem]]:
    project = load_project(root)
    items: list[SpecItem] = [*project.requirements, *project.tasks]
    out = [LocalItem(i.id, i.file, getattr(i, "status", None), _draft(i)) for i in items]
    return project, out


def draft_hash(draft: IssueDraft) -> str:
    data = {"title": draft.title, "body": draft.body, "closed": draft.closed}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def remote_snapshot(issue: Issue) -> dict[str, Any]:
    return {
        "title": issue.title,
        "body": issue.body,
        "status": issue.status,
        "closed": issue.closed,
        "assignee": issue.assignee,
    }


def _remote_changed(issue: Issue, last: dict[str, Any]) -> bool:
    now = remote_snapshot(issue)
    return any(now[k] != last.get(k) for k in ("title", "body", "closed", "status"))


async def project_root(s: AsyncSession, project_id: str) -> Path:
    project = await s.get(Project, project_id)
    if project is None or not project.repo_path:
        raise InvalidInput(
            f"project {project_id!r} has no repository path: set repo_path to sync its specs",
            field="repo_path",
        )
    return Path(project.repo_path)


async def _links(s: AsyncSession, integration_id: str) -> dict[str, IssueLink]:
    rows = await s.scalars(select(IssueLink).where(IssueLink.integration_id == integration_id))
    return {r.item_id: r for r in rows}


async def plan_sync(
    s: AsyncSession, integration: Integration, items: list[LocalItem]
) -> SyncResult:
    """Queue one outbox row per changed item (see the module docstring)."""
    links = await _links(s, integration.id)
    pending: dict[str, OutboxItem] = {}
    rows = await s.scalars(
        select(OutboxItem)
        .where(OutboxItem.integration_id == integration.id, OutboxItem.status.in_(PENDING))
        .order_by(OutboxItem.created_at)
    )
    for queued in rows:
        pending[queued.item_id] = queued  # the latest per item
    result = SyncResult()
    now = utcnow()
    for item in items:
        h = draft_hash(item.draft)
        link, row = links.get(item.item_id), pending.get(item.item_id)
        if link is not None and link.conflict is not None:
            result.conflicts += 1
            continue
        if (row is not None and row.payload_hash == h) or (
            row is None and link is not None and link.local_hash == h
        ):
            result.unchanged += 1
            continue
        payload = asdict(item.draft)
        if row is not None and row.status in ("queued", "parked"):
            row.payload, row.payload_hash = payload, h  # coalesced: one row per item
            row.status, row.next_at, row.error = "queued", now, None
        else:  # none yet, or one in flight: this one waits its turn
            s.add(
                OutboxItem(
                    integration_id=integration.id,
                    item_id=item.item_id,
                    payload=payload,
                    payload_hash=h,
                    next_at=now,
                )
            )
        result.queued += 1
    await record(
        s,
        "integration.sync",
        f"{integration.project_id}/{integration.kind}",
        detail=result.as_dict(),
    )
    return result


def _find(project: SddProject, item_id: str) -> SpecItem | None:
    items: list[SpecItem] = [*project.requirements, *project.tasks]
    return next((i for i in items if i.id == item_id), None)


def _set_field(item: SpecItem, name: str, value: str) -> bool:
    if name == "status" and hasattr(item, "status"):
        if item.status == value:
            return False
        item.status = value
        return True
    if item.extra.get(name) == value:
        return False
    item.extra = {**item.extra, name: value}
    return True


def _save(project: SddProject, item_id: str, edit: dict[str, str]) -> bool:
    """Write field values into the item's block; False when it cannot be written there
    (an item in a table row without such a column keeps its text)."""
    for doc in project.documents:
        item = doc.get(item_id)
        if item is None:
            continue
        before = item.model_copy(deep=True)
        changed = False
        for name, value in edit.items():
            if name == "title":
                changed |= item.title != value
                item.title = value
            else:
                changed |= _set_field(item, name, value)
        if not changed:
            return True
        try:
            doc.render()
        except ValueError:
            doc.replace(item_id, before)
            return False
        project.save(doc)
        return True
    return False


def tracker_ref(integration: Integration, key: str) -> str:
    """How the spec names the issue: the tracker class decides (``PROJ-12``,
    ``owner/repo#12``); ``target#key`` for a tracker no longer installed."""
    from musubi.errors import InvalidInput, PluginError
    from musubi.integrations.tracker import tracker_class

    try:
        return tracker_class(integration.kind).reference(integration.target, key)
    except (InvalidInput, PluginError):
        return f"{integration.target}#{key}"


_SCALAR = re.compile(r"^\*\*[^*\n]{1,40}\*\*[ \t]*[:\uff1a]|^\*\*[^*\n]{1,40}[:\uff1a]\*\*")
_HEADING = re.compile(r"^#{1,6}[ \t]")


def _with_tracker_line(lines: list[str], start: int, ref: str) -> bool:
    """Put ``**Tracker**: ref`` among the scalar fields of the block whose heading or bold
    line is ``lines[start]``: after the last of its leading ``**Field**: value`` lines.

    Written here rather than through the item's renderer, which inserts a new field at
    the block's end (inside a trailing code fence, or glued to a list).
    """
    end = next((i for i in range(start + 1, len(lines)) if _HEADING.match(lines[i])), len(lines))
    eol = "\r\n" if lines[start].endswith("\r\n") else "\n"
    line = f"**{TRACKER_FIELD}**: {ref}  {eol}"
    for i in range(start, end):
        if lines[i].startswith(f"**{TRACKER_FIELD}**"):
            if lines[i] == line:
                return False
            lines[i] = line
            return True
    first = next((i for i in range(start + 1, end) if _SCALAR.match(lines[i])), None)
    if first is None:
        lines[start + 1 : start + 1] = [eol, line]
        return True
    while first + 1 < end and _SCALAR.match(lines[first + 1]):
        first += 1
    lines.insert(first + 1, line)
    return True


def write_tracker_keys(root: Path, integration: Integration, links: list[IssueLink]) -> int:
    """Put each linked issue's key into its spec block (``**Tracker**: PROJ-12``); items
    written as table rows keep only the label on the tracker and the link in the
    database."""
    from musubi.sdd.files import atomic_write, read_text

    project = load_project(root)
    keys = {link.item_id: tracker_ref(integration, link.issue_key) for link in links}
    by_file: dict[str, list[tuple[int, str]]] = {}
    for item in [*project.requirements, *project.tasks]:
        ref = keys.get(item.id)
        if ref and item.source_form in ("heading", "bold") and item.extra.get(TRACKER_FIELD) != ref:
            by_file.setdefault(item.file, []).append((item.line, ref))
    written = 0
    for file, edits in by_file.items():
        path = root / file
        lines = read_text(path).splitlines(keepends=True)
        for line_no, ref in sorted(edits, reverse=True):  # bottom up: earlier lines stay put
            written += _with_tracker_line(lines, line_no - 1, ref)
        atomic_write(path, "".join(lines))
    return written


def _mapped_status(integration: Integration, issue: Issue) -> str | None:
    mapped = integration.status_map.get(issue.status.lower())
    if mapped:
        return mapped
    return integration.status_map.get("closed" if issue.closed else "open")


async def apply_remote(s: AsyncSession, integration: Integration, root: Path, issue: Issue) -> str:
    """Bring a tracker-side change into the spec; returns what happened: ``applied``,
    ``unchanged``, ``conflict`` or ``unlinked``."""
    link = await s.scalar(
        select(IssueLink).where(
            IssueLink.integration_id == integration.id, IssueLink.issue_key == issue.key
        )
    )
    if link is None:
        return "unlinked"
    if not _remote_changed(issue, link.remote):
        return "unchanged"  # our own update coming back, or a field we do not sync
    project = await asyncio.to_thread(load_project, root)
    spec_item = _find(project, link.item_id)
    if spec_item is None:
        return "unlinked"
    remote = remote_snapshot(issue)
    local = _draft(spec_item)
    if draft_hash(local) != link.local_hash or link.conflict is not None:
        link.conflict = {
            "item_id": link.item_id,
            "issue_key": link.issue_key,
            "local": asdict(local),
            "remote": remote,
            "base": link.remote,
            "detected_at": utcnow().isoformat(),
        }
        await record(
            s,
            "integration.conflict",
            f"{integration.project_id}/{integration.kind}/{link.item_id}",
            detail={"issue": issue.key},
        )
        return "conflict"
    edit: dict[str, str] = {}
    status = _mapped_status(integration, issue)
    if status:
        edit["status"] = status
    prefix = f"{link.item_id}: "
    if issue.title != link.remote.get("title") and issue.title.startswith(prefix):
        edit["title"] = issue.title[len(prefix) :]
    if edit:
        await asyncio.to_thread(_save, project, link.item_id, edit)
        spec_item = _find(project, link.item_id) or spec_item
    link.local_hash = draft_hash(_draft(spec_item))
    link.remote, link.synced_at = remote, utcnow()
    await record(
        s,
        "integration.remote_change",
        f"{integration.project_id}/{integration.kind}/{link.item_id}",
        detail={"issue": issue.key, "status": issue.status, "applied": sorted(edit)},
    )
    return "applied"


async def resolve_conflict(
    s: AsyncSession, integration: Integration, root: Path, item_id: str, keep: str
) -> IssueLink:
    """End a conflict: ``keep='local'`` queues MUSUBI's version for the tracker;
    ``keep='remote'`` writes the tracker's version into the spec."""
    from musubi.errors import NotFound

    link = await s.scalar(
        select(IssueLink).where(
            IssueLink.integration_id == integration.id, IssueLink.item_id == item_id
        )
    )
    if link is None or link.conflict is None:
        raise NotFound(f"{item_id} has no conflict", model=IssueLink)
    if keep not in ("local", "remote"):
        raise InvalidInput("keep must be 'local' or 'remote'", field="keep")
    conflict, link.conflict = link.conflict, None
    remote = conflict["remote"]
    if keep == "remote":
        link.remote = conflict["base"]  # so the remote version reads as a change to apply
        link.local_hash = draft_hash(
            next(i for i in local_items(root)[1] if i.item_id == item_id).draft
        )
        issue = Issue(
            link.issue_key,
            remote["title"],
            remote["body"],
            remote["status"],
            remote["closed"],
            assignee=remote.get("assignee"),
        )
        await apply_remote(s, integration, root, issue)
    else:
        link.remote = remote  # the tracker's version is now the known base
        link.local_hash = ""  # differs from any draft: the next sync sends MUSUBI's
        await s.execute(
            update(OutboxItem)
            .where(
                OutboxItem.integration_id == integration.id,
                OutboxItem.item_id == item_id,
                OutboxItem.status == "conflict",
            )
            .values(status="done", error="superseded: conflict resolved, keep local")
            .execution_options(synchronize_session=False)
        )
    await record(
        s,
        "integration.conflict_resolved",
        f"{integration.project_id}/{integration.kind}/{item_id}",
        detail={"keep": keep},
    )
    return link
