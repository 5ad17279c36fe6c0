"""Requirements documents: ``storage/specs/<feature>-requirements.md`` and the other names
MUSUBI projects use (see :mod:`musubi.sdd.project`).

Each requirement is a block (``### REQ-<COMP>-NNN: Title``, ``#### REQ-001-KG-001 タイトル
(Ubiquitous)``, ``**REQ-002-001**: タイトル`` or a table row) with an EARS statement (under
``**EARS Statement**:``, ``**要件**:``, ``| EARS形式 | … |``, often in a code fence or a block
quote, or simply the first sentence with SHALL or a Japanese obligation such as
``しなければならない``), ``**Priority**``, ``**Status**`` and acceptance criteria. The EARS
pattern is a field (``**EARS Pattern**``, ``**Type**``, ``| 要件種別 | … |``) or named in
parentheses at the end of the heading; the title is then read without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from musubi.sdd.ids import KIND_GROUPS
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
            "pattern",
            "Pattern",
            aliases=(
                "ears pattern",
                "ears type",
                "type",
                "requirement type",
                "\u30d1\u30bf\u30fc\u30f3",
                "ears\u30d1\u30bf\u30fc\u30f3",
                "\u8981\u4ef6\u7a2e\u5225",
                "\u7a2e\u5225",
                "\u30bf\u30a4\u30d7",
            ),
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
                "ears format",
                "ears statement (en)",
                "description",
                "\u8981\u4ef6\u6587",
                "\u8981\u4ef6",
                "ears\u5f62\u5f0f",
                "ears\u8981\u4ef6",
                "\u8aac\u660e",
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
                "\u53d7\u5165\u6761\u4ef6",
                "\u53d7\u3051\u5165\u308c\u6761\u4ef6",
            ),
        ),
    )
    DERIVED: ClassVar[frozenset[str]] = frozenset({"file", "line", "statement_line"})
    TITLE_COLUMNS: ClassVar[tuple[str, ...]] = (
        *SpecItem.TITLE_COLUMNS,
        "\u8981\u4ef6\u540d",
        "\u6a5f\u80fd\u540d",
        "\u9805\u76ee",
        "\u6307\u6a19",
        "metric",
    )


RequirementsDocument = SpecDocument[Requirement]


_PATTERN_SUFFIX = re.compile(
    r"[ \t]*[(\uff08][ \t]*(?P<name>(?:where-?)?(?:ubiquitous|event[- ]driven|state[- ]driven|"
    r"unwanted(?: behaviou?r)?|optional(?: feature)?|complex|where-optional))[ \t]*[)\uff09]$",
    re.IGNORECASE,
)
# Words that make a Japanese sentence a requirement (the SHALL of the Japanese EARS forms).
JA_OBLIGATION = re.compile(
    "\u3057\u306a\u3051\u308c\u3070\u306a\u3089\u306a\u3044|\u306a\u3051\u308c\u3070\u306a\u3089\u306a\u3044|"
    "\u3059\u308b\u3053\u3068|\u3067\u304d\u308b\u3053\u3068|\u3057\u3066\u306f\u306a\u3089\u306a\u3044|"
    "\u3082\u306e\u3068\u3059\u308b"
)


_SHALL = re.compile(r"(?<![A-Za-z])shall(?![A-Za-z])", re.IGNORECASE)


def _is_statement(text: str) -> bool:
    return _SHALL.search(text) is not None or JA_OBLIGATION.search(text) is not None


def _build(block: RawBlock, scanned: ScannedBlock) -> Mapping[str, Any]:
    values = field_values(scanned, Requirement.FIELDS)
    suffix = _PATTERN_SUFFIX.search(block.title)
    if suffix and block.title_span is not None:
        values["title"] = block.title[: suffix.start()]
        block.title_span = (block.title_span[0], block.title_span[0] + suffix.start())
        values.setdefault("pattern", suffix["name"])
    span = scanned.spans.get("statement")
    if (
        block.form == "row"
        and not block.title
        and span
        and not _is_statement(span_text := values.get("statement", ""))
    ):
        # ``| REQ-NFR-001 | 単純検索応答時間 | < 200ms |``: the "requirement" column is a name.
        values["title"] = span_text
        values.pop("statement", None)
        scanned.spans["title"] = scanned.spans.pop("statement")
        span = None
    if block.form == "row" and not values.get("title") and values.get("statement"):
        lead = re.match(r"\*\*(?P<t>[^*]+?)\*\*[ \t]*[:\uff1a]", values["statement"])
        if lead:  # ``| FR-001-01 | **正規表現ベース表記揺れ統一**: システムは… |``
            values["title"] = lead["t"].strip()
    if not values.get("statement") and block.form != "row":
        for start, end, text in scanned.paragraphs:
            if _is_statement(text):
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
    return parse_document(text, path, KIND_GROUPS["requirements"], _build, Requirement)
