"""Task breakdowns: ``storage/tasks/<feature>-tasks.md``.

``### TASK-NNN: Title`` blocks with priority, estimate, assignee, status, the requirements
they implement and the tasks they depend on. Real files disagree on the details, so every
variant seen in MUSUBI projects is accepted: ``**Depends on**``, ``**Dependencies**:``,
``Dependencies:`` without bold, bullet fields (``- **Status**: Done``), any field order,
dependency lists inline (``TASK-001, TASK-002``) or as bullets, and ``None``/``-``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from musubi.sdd.ids import find_ids
from musubi.sdd.markdown import RawBlock, ScannedBlock
from musubi.sdd.models import FieldDef, SpecDocument, SpecItem, field_values, parse_document

__all__ = ["Task", "TasksDocument", "parse_tasks"]

_DEPENDS = (
    "depends",
    "depends-on",
    "dependencies",
    "dependency",
    "blocked by",
    "prerequisites",
    "after",
    "\u4f9d\u5b58",
    "\u4f9d\u5b58\u95a2\u4fc2",
    "\u524d\u63d0\u30bf\u30b9\u30af",
)
_REQS = (
    "requirement",
    "related requirements",
    "related requirement",
    "implements",
    "traces to",
    "req",
    "reqs",
    "\u8981\u4ef6",
    "\u95a2\u9023\u8981\u4ef6",
)


class Task(SpecItem):
    priority: str | None = None
    estimate: str | None = None
    assignee: str | None = None
    status: str | None = None
    requirements: list[str] = []
    depends_on: list[str] = []

    FIELDS: ClassVar[tuple[FieldDef, ...]] = (
        FieldDef("priority", "Priority", aliases=("\u512a\u5148\u5ea6",)),
        FieldDef(
            "estimate",
            "Estimate",
            aliases=(
                "estimated",
                "estimation",
                "effort",
                "estimated effort",
                "estimated time",
                "time estimate",
                "story points",
                "\u898b\u7a4d\u3082\u308a",
                "\u898b\u7a4d",
                "\u5de5\u6570",
            ),
        ),
        FieldDef(
            "assignee",
            "Assignee",
            aliases=("assigned to", "assigned", "owner", "\u62c5\u5f53", "\u62c5\u5f53\u8005"),
        ),
        FieldDef(
            "status", "Status", aliases=("state", "\u30b9\u30c6\u30fc\u30bf\u30b9", "\u72b6\u614b")
        ),
        FieldDef("requirements", "Requirements", "inline-list", aliases=_REQS),
        FieldDef("depends_on", "Depends on", "inline-list", aliases=_DEPENDS),
    )


TasksDocument = SpecDocument[Task]


def _ids(values: list[str], kinds: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for value in values:
        for ident, _ in find_ids(value):
            if ident.split("-")[0] in kinds and ident not in out:
                out.append(ident)
    return out


def _build(block: RawBlock, scanned: ScannedBlock) -> Mapping[str, Any]:
    values = dict(field_values(scanned, Task.FIELDS))
    values["depends_on"] = _ids(values.get("depends_on", []), ("TASK",))
    values["requirements"] = _ids(values.get("requirements", []), ("REQ",))
    return values


def parse_tasks(text: str, path: str) -> TasksDocument:
    return parse_document(text, path, ("TASK",), _build, Task)
