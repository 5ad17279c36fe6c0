"""Task breakdowns: ``storage/tasks/<feature>-tasks.md``, ``TASKS-001-<feature>.md``,
``TSK-…``, ``v4.0.0-tasks.md``.

Task blocks (``### TASK-NNN: Title``, ``### TASK-1.1: タイトル [P0]``, ``#### T-101: …``, or
rows of a task table ``| タスクID | タスク名 | 優先度 | 見積 | 依存 | 要件ID |``) with
priority, estimate, assignee, status, the requirements they implement and the tasks they
depend on. Real files disagree on the details, so every variant seen in MUSUBI projects is
accepted: ``**Depends on**``, ``**Dependencies**:``, ``**依存**``, ``Dependencies:`` without
bold, bullet fields (``- **Status**: Done``), any field order, dependency lists inline
(``TASK-001, TASK-002``) or as bullets, ``None``/``-``/``なし``, and a priority in brackets
after the title.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from musubi.sdd.ids import KIND_GROUPS, expand_ids
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
    "\u4f9d\u5b58\u30bf\u30b9\u30af",
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
    "\u8981\u4ef6id",
    "\u5bfe\u5fdc\u8981\u4ef6",
    "\u8981\u4ef6\u53c2\u7167",
    "\u30c8\u30ec\u30fc\u30b5\u30d3\u30ea\u30c6\u30a3",
)


_PRIORITY_SUFFIX = re.compile(r"[ \t]*\[(?P<p>P\d|[A-Z][A-Za-z]*)\]$")


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
                "\u898b\u7a4d\u308a",
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
    TITLE_COLUMNS: ClassVar[tuple[str, ...]] = (
        *SpecItem.TITLE_COLUMNS,
        "task",
        "task name",
        "\u30bf\u30b9\u30af",
        "\u30bf\u30b9\u30af\u540d",
        "\u5185\u5bb9",
    )


TasksDocument = SpecDocument[Task]


def _ids(values: list[str], kinds: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for value in values:
        out += [i for i in expand_ids(value, kinds) if i not in out]
    return out


def _build(block: RawBlock, scanned: ScannedBlock) -> Mapping[str, Any]:
    values = dict(field_values(scanned, Task.FIELDS))
    suffix = _PRIORITY_SUFFIX.search(block.title)
    if suffix and block.title_span is not None:
        values["title"] = block.title[: suffix.start()]
        block.title_span = (block.title_span[0], block.title_span[0] + suffix.start())
        values.setdefault("priority", suffix["p"])
    values["depends_on"] = _ids(values.get("depends_on", []), KIND_GROUPS["tasks"])
    values["requirements"] = _ids(values.get("requirements", []), KIND_GROUPS["requirements"])
    return values


def parse_tasks(text: str, path: str) -> TasksDocument:
    return parse_document(text, path, KIND_GROUPS["tasks"], _build, Task)
