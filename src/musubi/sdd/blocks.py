"""Cutting a spec file into ID blocks, in every form MUSUBI users write them.

A block starts at one of:

- a heading whose text starts with an ID, at any level from 2 (1 for kinds given in
  ``top_kinds``, such as an ADR in a file of its own), after an optional section number:
  ``#### REQ-001-KG-001 エンティティ抽出 (Ubiquitous)``, ``### 3.5 ADR-001: Alias Storage``,
  ``### TASK-1.1: プロジェクト初期化 [P0]``;
- a line that starts with the ID in bold: ``**REQ-002-001**: 共起分析``;
- a row of a table whose first column holds IDs and which has a title or statement column
  (``| FR-DOC-INP-001 | ファイル形式検出 | Ubiquitous | システムは… |``), unless the same ID
  has a heading or bold block in the file, or an earlier row, or the table sits under a
  heading that says it lists IDs defined elsewhere ("関連要件", "Traceability Matrix"):
  summary tables, traceability matrices and task lists repeat IDs.

A heading with an ID that holds other blocks (``### FR-001: …`` above ``#### REQ-…`` or above
a table of ``FR-001-01`` rows) is a *group*, not a block. A heading block runs to the next
heading of the same or a higher level or the next block; a bold block to the next heading or
block; a row is one line.

Each block keeps its exact text, the blank lines and rules after it (``gap``) and the text up to
the next block (``between``), so the pieces concatenated give back the file byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

from musubi.sdd.ids import ID_RE, parse_id
from musubi.sdd.tables import Table, cells, find_tables, plain_cell

__all__ = [
    "FENCE",
    "HEADING",
    "RULE",
    "BlockForm",
    "RawBlock",
    "SplitDocument",
    "fenced_lines",
    "split_blocks",
    "strip_eol",
]

FW_COLON = "\uff1a"
_DASHES = "\u2014\u2013"
HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<text>.*?)[ \t]*#*[ \t]*$")
FENCE = re.compile(r"^[ \t]*(```|~~~)")
RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$")
_SECTION = re.compile(r"(?:\d+(?:\.\d+)*\.?|[A-Z]\.(?:\d+(?:\.\d+)*)?)[ \t]+")
_SEP = re.compile("[`\\]]?[ \t]*(?:[:" + FW_COLON + _DASHES + r"]|-(?=[ \t]))?[ \t]*")
_BOLD_START = re.compile(r"^\*\*(?P<body>[^*\n]+?)\*\*")
ID_HEADERS = frozenset(
    {
        "id",
        "req-id",
        "req id",
        "reqid",
        "requirement id",
        "task id",
        "task-id",
        "taskid",
        "要件id",
        "要件番号",
        "タスクid",
        "タスク番号",
        "no",
        "no.",
        "#",
    }
)
BlockForm = Literal["heading", "bold", "row"]


def strip_eol(line: str) -> str:
    return line.rstrip("\r\n")


@dataclass
class RawBlock:
    id: str
    title: str
    level: int  # heading level; 7 for a bold block, 8 for a table row
    line: int  # 1-based line of the block's first line in the file
    lines: list[str]
    gap: str = ""
    between: str = ""
    form: BlockForm = "heading"
    id_span: tuple[int, int] = (0, 0)  # columns of the ID on the first line
    title_span: tuple[int, int] | None = None  # columns of the title on the first line
    header: list[str] = field(default_factory=list)  # table header, for rows

    @property
    def text(self) -> str:
        return "".join(self.lines)


@dataclass
class SplitDocument:
    preamble: str
    blocks: list[RawBlock]
    headings: list[tuple[int, int, str]] = field(default_factory=list)  # (line, level, text)
    # Table rows repeating the ID of a heading or bold block: ID -> (row line, table header).
    summary_rows: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    # Headings with an ID read as groups: (line, ID, ID of the first block inside).
    groups: list[tuple[int, str, str]] = field(default_factory=list)

    def render(self) -> str:
        return self.preamble + "".join(b.text + b.gap + b.between for b in self.blocks)


def fenced_lines(lines: list[str]) -> set[int]:
    """Indexes of the lines inside (or opening/closing) code fences."""
    out: set[int] = set()
    inside = False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            out.add(i)
            inside = not inside
        elif inside:
            out.add(i)
    return out


@dataclass
class _Start:
    index: int  # 0-based line
    level: int
    form: BlockForm
    id: str
    id_span: tuple[int, int]
    title_span: tuple[int, int] | None
    header: list[str] = field(default_factory=list)


def _id_at(text: str, pos: int, kinds: Collection[str]) -> re.Match[str] | None:
    m = ID_RE.match(text, pos)
    if m is None or m["kind"] not in kinds or parse_id(m.group(0)) is None:
        return None
    return m


def _title_span(line: str, pos: int, end: int) -> tuple[int, int]:
    """Columns of the title after an ID ending at ``pos`` (separators and bold marks off)."""
    sep = _SEP.match(line, pos)
    start = sep.end() if sep else pos
    text = line[start:end]
    stop = start + len(text.rstrip(" \t*").rstrip())
    start += len(text) - len(text.lstrip("*").lstrip())
    return start, max(start, stop)


def _heading_start(
    i: int, line: str, kinds: Collection[str], top_kinds: Collection[str]
) -> _Start | None:
    bare = strip_eol(line)
    h = HEADING.match(bare)
    if h is None:
        return None
    level = len(h["hashes"])
    pos = h.start("text")
    end = h.end("text")
    while bare.startswith(("*", "[", "`"), pos):  # **REQ-001**, [REQ-001], `REQ-001`
        pos += 1
    sec = _SECTION.match(bare, pos)
    if sec and _id_at(bare, sec.end(), kinds):
        pos = sec.end()
    m = _id_at(bare, pos, kinds)
    if m is None or (level < 2 and m["kind"] not in top_kinds):
        return None
    return _Start(i, level, "heading", m.group(0), m.span(), _title_span(bare, m.end(), end))


def _bold_start(i: int, line: str, kinds: Collection[str]) -> _Start | None:
    bare = strip_eol(line)
    b = _BOLD_START.match(bare)
    if b is None:
        return None
    m = _id_at(bare, 2, kinds)
    if m is None or (m.end() != b.end("body") and bare[m.end()] not in " \t:" + FW_COLON):
        return None
    if m.end() == b.end("body"):
        span = _title_span(bare, b.end(), len(bare))
    else:
        span = _title_span(bare, m.end(), b.end("body"))
    return _Start(i, 7, "bold", m.group(0), m.span(), span)


# A table under a heading such as "1.2 関連要件" or "Traceability Matrix" lists IDs defined
# elsewhere.
_REFERENCE_SECTION = re.compile(
    r"related|traceab|matrix|reference|coverage|mapping|"
    "\u95a2\u9023|\u30c8\u30ec\u30fc\u30b5\u30d3\u30ea\u30c6\u30a3|"
    "\u30de\u30c8\u30ea\u30af\u30b9|\u53c2\u7167|\u5bfe\u5fdc\u8868",
    re.IGNORECASE,
)


def _row_starts(
    lines: list[str],
    tables: list[Table],
    kinds: Collection[str],
    defined: set[str],
    is_item_table: Callable[[list[str]], bool],
    headings: list[tuple[int, int, str]],
    summary: dict[str, tuple[str, list[str]]],
) -> list[_Start]:
    out: list[_Start] = []
    seen = set(defined)
    for table in tables:
        if not table.header or table.header[0].strip("*` ").lower() not in ID_HEADERS:
            continue
        above = [text for line, _level, text in headings if line - 1 < table.header_line]
        if above and _REFERENCE_SECTION.search(above[-1]):
            continue
        if not is_item_table(table.header):
            continue
        for i in table.rows:
            row = cells(lines[i])
            if not row:
                continue
            ident = plain_cell(row[0].text)
            sid = parse_id(ident)
            if sid is None or sid.kind not in kinds:
                continue
            if ident in defined:
                summary.setdefault(ident, (lines[i], table.header))
            if ident in seen:
                continue
            seen.add(ident)
            col = row[0].start + row[0].text.index(ident)
            out.append(_Start(i, 8, "row", ident, (col, col + len(ident)), None, table.header))
    return out


def split_blocks(
    text: str,
    kinds: tuple[str, ...],
    *,
    top_kinds: tuple[str, ...] = (),
    is_item_table: Callable[[list[str]], bool] = lambda header: False,
) -> SplitDocument:
    """Cut ``text`` into preamble and ID blocks of the given kinds (see module docstring).

    ``is_item_table`` says from a table's header cells whether its rows define items.
    """
    lines = text.splitlines(keepends=True)
    fenced = fenced_lines(lines)
    headings: list[tuple[int, int]] = []  # (index, level)
    all_headings: list[tuple[int, int, str]] = []
    starts: list[_Start] = []
    for i, line in enumerate(lines):
        if i in fenced:
            continue
        h = HEADING.match(strip_eol(line))
        if h:
            headings.append((i, len(h["hashes"])))
            all_headings.append((i + 1, len(h["hashes"]), h["text"]))
            start = _heading_start(i, line, kinds, top_kinds)
        else:
            start = _bold_start(i, line, kinds)
        if start is not None:
            starts.append(start)
    defined = {s.id for s in starts}
    tables = find_tables(lines, fenced)
    summary: dict[str, tuple[str, list[str]]] = {}
    starts += _row_starts(lines, tables, kinds, defined, is_item_table, all_headings, summary)
    starts.sort(key=lambda s: s.index)

    def section_end(start: _Start) -> int:
        for i, level in headings:
            if i > start.index and (start.form == "bold" or level <= start.level):
                return i
        return len(lines)

    # A heading that holds other blocks is a group (``### FR-001`` above its requirements).
    groups: list[tuple[int, str, str]] = []
    kept: list[_Start] = []
    for s in starts:
        end = section_end(s) if s.form == "heading" else s.index
        inner = [o for o in starts if s.index < o.index < end]
        if inner:
            groups.append((s.index + 1, s.id, inner[0].id))
        else:
            kept.append(s)
    starts = kept
    if not starts:
        return SplitDocument(text, [], all_headings, summary, groups)
    blocks: list[RawBlock] = []
    for n, s in enumerate(starts):
        next_block = starts[n + 1].index if n + 1 < len(starts) else len(lines)
        end = s.index + 1 if s.form == "row" else min(next_block, section_end(s))
        body_end = end
        while body_end > s.index + 1 and (
            not lines[body_end - 1].strip() or RULE.match(lines[body_end - 1])
        ):
            body_end -= 1
        first = strip_eol(lines[s.index])
        title = ""
        title_span = s.title_span
        if s.form == "row":
            title_span = None
        elif title_span is not None:
            title = first[title_span[0] : title_span[1]]
        blocks.append(
            RawBlock(
                id=s.id,
                title=title,
                level=s.level,
                line=s.index + 1,
                lines=lines[s.index : body_end],
                gap="".join(lines[body_end:end]),
                between="".join(lines[end:next_block]),
                form=s.form,
                id_span=s.id_span,
                title_span=title_span,
                header=s.header,
            )
        )
    return SplitDocument("".join(lines[: starts[0].index]), blocks, all_headings, summary, groups)
