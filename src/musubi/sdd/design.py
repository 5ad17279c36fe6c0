"""Design documents: ``storage/design/<feature>-design.md``, ``DES-001-<feature>.md``,
``DESIGN-001-<feature>.md``, ``ADR-001-<topic>.md``, ``v4.0.0-design.md``.

MUSUBI designs follow the C4 model (Context, Container, Component, Code sections) and hold
design records: architecture decisions as ``### ADR-NNN: Title`` blocks (at any level, after a
section number such as ``### 3.5 ADR-001: …``, or as the ``# ADR-001: …`` title of a file of
their own) with a ``**Status**``, and ``DES-…``/``DESIGN-…`` sections. The document's own ID
(``DES-002``, ``**ID**: DESIGN-001``) is :attr:`SpecDocument.doc_id`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from musubi.sdd.ids import KIND_GROUPS
from musubi.sdd.markdown import RawBlock, ScannedBlock
from musubi.sdd.models import FieldDef, SpecDocument, SpecItem, field_values, parse_document

__all__ = ["ADR_STATUSES", "C4_LEVELS", "Adr", "DesignDocument", "c4_levels", "parse_design"]

C4_LEVELS = ("context", "container", "component", "code")
ADR_STATUSES = ("proposed", "accepted", "rejected", "deprecated", "superseded")


class Adr(SpecItem):
    status: str | None = None
    date: str | None = None
    requirements: list[str] = []
    context: str | None = None
    decision: str | None = None
    consequences: str | None = None

    FIELDS: ClassVar[tuple[FieldDef, ...]] = (
        FieldDef("status", "Status", aliases=("\u30b9\u30c6\u30fc\u30bf\u30b9", "\u72b6\u614b")),
        FieldDef("date", "Date", aliases=("created", "decision date", "\u65e5\u4ed8")),
        FieldDef(
            "requirements",
            "Requirements",
            "inline-list",
            aliases=("requirement", "related requirements", "traces to", "\u8981\u4ef6"),
        ),
        FieldDef("context", "Context", "text", aliases=("\u80cc\u666f",)),
        FieldDef("decision", "Decision", "text", aliases=("\u6c7a\u5b9a",)),
        FieldDef("consequences", "Consequences", "text", aliases=("\u7d50\u679c", "\u5f71\u97ff")),
    )


DesignDocument = SpecDocument[Adr]


def _build(block: RawBlock, scanned: ScannedBlock) -> Mapping[str, Any]:
    return field_values(scanned, Adr.FIELDS)


def parse_design(text: str, path: str) -> DesignDocument:
    return parse_document(text, path, KIND_GROUPS["design"], _build, Adr, top_kinds=("ADR",))


def c4_levels(doc: DesignDocument) -> dict[str, int]:
    """Which C4 levels the document has a section for: level name -> heading line."""
    found: dict[str, int] = {}
    for h in doc.headings:
        words = re.findall(r"[a-z]+", h.text.lower())
        for level in C4_LEVELS:
            if (
                level in words
                and level not in found
                and ("c4" in words or "diagram" in words or level != "code" or len(words) <= 3)
            ):
                found[level] = h.line
    return found
