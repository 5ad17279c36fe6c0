"""Requirements documents: ``storage/specs/<feature>-requirements.md``.

Each requirement is a ``### REQ-<COMP>-NNN: Title`` block with an EARS statement (under
``**EARS Statement**:``, often in a code fence, or simply the first sentence with SHALL),
``**Priority**``, ``**Status**`` and an ``**Acceptance Criteria**:`` bullet list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from musubi.sdd.markdown import FieldSpan, RawBlock, ScannedBlock
from musubi.sdd.models import FieldDef, SpecDocument, SpecItem, field_values, parse_document

__all__ = ["Requirement", "RequirementsDocument", "parse_requirements"]


class Requirement(SpecItem):
    pattern: str | None = None
    priority: str | None = None
    status: str | None = None
    statement: str = ""
    acceptance_criteria: list[str] = []
    statement_line: int | None = None

    FIELDS: ClassVar[tuple[FieldDef, ...]] = (
        FieldDef(
            "pattern", "Pattern", aliases=("ears pattern", "ears type", "\u30d1\u30bf\u30fc\u30f3")
        ),
        FieldDef("priority", "Priority", aliases=("\u512a\u5148\u5ea6",)),
        FieldDef("status", "Status", aliases=("\u30b9\u30c6\u30fc\u30bf\u30b9", "\u72b6\u614b")),
        FieldDef(
            "statement",
            "EARS Statement",
            "text",
            fenced=True,
            aliases=(
                "ears",
                "statement",
                "requirement statement",
                "ears requirement",
                "requirement",
                "\u8981\u4ef6\u6587",
            ),
        ),
        FieldDef(
            "acceptance_criteria",
            "Acceptance Criteria",
            "list",
            checkbox=True,
            aliases=(
                "acceptance",
                "\u53d7\u5165\u57fa\u6e96",
                "\u53d7\u3051\u5165\u308c\u57fa\u6e96",
            ),
        ),
    )
    DERIVED: ClassVar[frozenset[str]] = frozenset({"file", "line", "statement_line"})


RequirementsDocument = SpecDocument[Requirement]


def _build(block: RawBlock, scanned: ScannedBlock) -> Mapping[str, Any]:
    values = field_values(scanned, Requirement.FIELDS)
    span = scanned.spans.get("statement")
    if not values.get("statement"):
        for start, end, text in scanned.paragraphs:
            if " shall " in f" {text.lower()} " or text.lower().startswith("shall "):
                values["statement"] = text
                scanned.spans["statement"] = span = FieldSpan(
                    "statement",
                    "EARS Statement",
                    "text",
                    start,
                    end,
                    quote=block.lines[start].lstrip().startswith(">"),
                )
                break
    if span is not None:
        values["statement_line"] = block.line + span.start
    return values


def parse_requirements(text: str, path: str) -> RequirementsDocument:
    return parse_document(text, path, ("REQ",), _build, Requirement)
