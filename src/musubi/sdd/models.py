"""The document model shared by requirements, designs and tasks.

A :class:`SpecItem` is one ID block: a ``### ID: Title`` section, a ``**ID**: Title`` paragraph
or a table row (see :mod:`musubi.sdd.blocks`). It remembers the text it was read from;
:meth:`SpecDocument.render` writes that text back unchanged unless the item was edited, and
then patches only the fields that changed (see :mod:`musubi.sdd.markdown`): a changed title or
ID replaces just those characters of the heading, a changed cell just that cell. New items are
rendered in MUSUBI's canonical form.

A document also keeps its metadata block (``**文書番号**: MONJYU-REQ-002``, ``**ID**: REQ-001``)
in :attr:`SpecDocument.meta` and its own ID in :attr:`SpecDocument.doc_id`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, PrivateAttr, ValidationError

from musubi.sdd.blocks import BlockForm
from musubi.sdd.diagnostics import Diagnostic, Severity
from musubi.sdd.ids import ID_RE, expand_ids, parse_id
from musubi.sdd.markdown import (
    Edit,
    FieldSpan,
    RawBlock,
    ScannedBlock,
    SpanKind,
    normalize_label,
    patch_block,
    scan_fields,
    scan_row,
    split_blocks,
)

__all__ = [
    "BlockSource",
    "FieldDef",
    "Heading",
    "Reference",
    "SpecDocument",
    "SpecItem",
    "field_values",
    "parse_document",
]


@dataclass(frozen=True)
class FieldDef:
    """An editable attribute of an item: where it lives in the model and how it is written."""

    attr: str
    label: str
    kind: SpanKind = "scalar"
    aliases: tuple[str, ...] = ()
    fenced: bool = False
    checkbox: bool = False


@dataclass
class BlockSource:
    lines: list[str]
    level: int
    spans: dict[str, FieldSpan]
    insert_at: int
    snapshot: dict[str, Any]
    form: BlockForm = "heading"
    id_span: tuple[int, int] = (0, 0)
    title_span: tuple[int, int] | None = None


@dataclass
class _Layout:
    gap: str = "\n"
    between: str = ""


class Reference(BaseModel):
    """An ID mentioned somewhere (a design section naming ``REQ-AUTH-001``, say)."""

    id: str
    file: str
    line: int
    context: str = ""


class Heading(BaseModel):
    line: int
    level: int
    text: str


class SpecItem(BaseModel):
    id: str
    title: str = ""
    file: str = ""
    line: int = 0
    extra: dict[str, str] = {}

    FIELDS: ClassVar[tuple[FieldDef, ...]] = ()
    DERIVED: ClassVar[frozenset[str]] = frozenset({"file", "line"})
    # Table columns that hold an item's title (``| ID | 要件名 | … |``).
    TITLE_COLUMNS: ClassVar[tuple[str, ...]] = (
        "title",
        "name",
        "summary",
        "\u30bf\u30a4\u30c8\u30eb",
        "\u540d\u524d",
        "\u540d\u79f0",
        "\u4ef6\u540d",
    )
    _source: BlockSource | None = PrivateAttr(default=None)
    _layout: _Layout = PrivateAttr(default_factory=_Layout)

    @classmethod
    def aliases(cls) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in cls.FIELDS:
            for name in (f.label, *f.aliases):
                out[name.lower()] = f.attr
        return out

    @classmethod
    def column_aliases(cls) -> dict[str, str]:
        """Field aliases plus title columns, for the header of a table of items."""
        return cls.aliases() | {name: "title" for name in cls.TITLE_COLUMNS}

    @classmethod
    def list_attrs(cls) -> frozenset[str]:
        return frozenset(f.attr for f in cls.FIELDS if f.kind in ("list", "inline-list"))

    def snapshot(self) -> dict[str, Any]:
        return self.model_dump(exclude=set(self.DERIVED))

    @property
    def source_form(self) -> str | None:
        """How the item is written: ``heading``, ``bold`` or ``row``; None when new."""
        return self._source.form if self._source else None

    @property
    def edited(self) -> bool:
        return self._source is None or self._source.snapshot != self.snapshot()

    def render_new(self, eol: str = "\n") -> str:
        """Canonical Markdown for an item that has no source text (MUSUBI's layout)."""
        head = [f"### {self.id}: {self.title}{eol}", eol]
        scalars: list[str] = []
        blocks: list[str] = []
        for f in self.FIELDS:
            value = getattr(self, f.attr)
            if value in (None, "", []):
                continue
            if f.kind == "list":
                mark = "[ ] " if f.checkbox else ""
                blocks += [eol, f"**{f.label}**:{eol}"] + [f"- {mark}{v}{eol}" for v in value]
            elif f.kind == "text":
                fence = "```" + eol
                body = [fence, f"{value}{eol}", fence] if f.fenced else [f"{value}{eol}"]
                blocks += [eol, f"**{f.label}**:{eol}", *body]
            else:
                shown = (", ".join(value) or "None") if isinstance(value, list) else value
                scalars.append(f"**{f.label}**: {shown}  {eol}")
        scalars += [f"**{label}**: {value}  {eol}" for label, value in self.extra.items()]
        if not scalars and blocks:
            blocks = blocks[1:]
        return "".join(head + scalars + blocks)

    def render(self) -> str:
        src = self._source
        if src is None:
            return self.render_new()
        if not self.edited:
            return "".join(src.lines)
        now = self.snapshot()
        edits: list[Edit] = []
        for f in self.FIELDS:
            if src.snapshot.get(f.attr) != now.get(f.attr):
                edits.append(Edit(f.attr, f.label, getattr(self, f.attr) or "", f.kind))
        for label, value in self.extra.items():
            if src.snapshot["extra"].get(label) != value:
                edits.append(Edit(f"extra:{label}", label, value))
        title_changed = src.snapshot["title"] != self.title
        if src.form == "row":
            if title_changed and "title" in src.spans:
                edits.append(Edit("title", src.spans["title"].label, self.title))
                title_changed = False
            absent = [e.label for e in edits if e.name not in src.spans]
            if absent:
                raise ValueError(
                    f"{self.id} is a table row with no {', '.join(absent)!s} column; "
                    "add the column to the table or move the item to its own section"
                )
        lines = patch_block(src.lines, src.spans, edits, src.insert_at)
        lines[0] = self._patch_first_line(lines[0], src, title_changed)
        return "".join(lines)

    def _patch_first_line(self, line: str, src: BlockSource, title_changed: bool) -> str:
        """Put a new title or ID in place of the old one on the heading (or row) line."""
        cuts: list[tuple[int, int, str]] = []
        if src.snapshot["id"] != self.id:
            cuts.append((*src.id_span, self.id))
        if title_changed:
            if src.title_span is not None:
                start, end = src.title_span
                text = self.title
                if start == end and text and not line[start - 1 : start].isspace():
                    text = ": " + text
                cuts.append((start, end, text))
            else:
                cuts.append((src.id_span[1], src.id_span[1], f": {self.title}"))
        for start, end, text in sorted(cuts, reverse=True):
            line = line[:start] + text + line[end:]
        return line


ItemT = TypeVar("ItemT", bound=SpecItem)


class SpecDocument(BaseModel, Generic[ItemT]):
    path: str
    doc_id: str | None = None
    meta: dict[str, str] = {}
    groups: list[str] = []  # IDs of group headings (``### FR-001`` above its requirements)
    preamble: str = ""
    items: list[ItemT] = []
    headings: list[Heading] = []
    references: list[Reference] = []
    diagnostics: list[Diagnostic] = []

    def get(self, item_id: str) -> ItemT | None:
        return next((i for i in self.items if i.id == item_id), None)

    def add(self, item: ItemT) -> None:
        """Append ``item`` after the last block, before any trailing section."""
        if self.items:
            last = self.items[-1]
            item._layout = _Layout(gap=last._layout.gap or "\n", between=last._layout.between)
            last._layout.between = ""
            if not last._layout.gap:
                tail = last.render()
                last._layout.gap = "\n" if tail.endswith("\n") else "\n\n"
        else:
            if self.preamble and not self.preamble.endswith("\n\n"):
                self.preamble += "\n" if self.preamble.endswith("\n") else "\n\n"
            item._layout = _Layout(gap="", between="")
        item.file = self.path
        self.items.append(item)

    def remove(self, item_id: str) -> ItemT:
        for n, item in enumerate(self.items):
            if item.id == item_id:
                if n:
                    self.items[n - 1]._layout.between += item._layout.between
                else:
                    self.preamble += item._layout.between
                return self.items.pop(n)
        raise KeyError(item_id)

    def fold(self, item_id: str) -> None:
        """Stop treating ``item_id`` as an item; its text stays where it is, as plain text."""
        for n, item in enumerate(self.items):
            if item.id == item_id:
                text = item.render() + item._layout.gap + item._layout.between
                if n:
                    self.items[n - 1]._layout.between += text
                else:
                    self.preamble += text
                del self.items[n]
                return
        raise KeyError(item_id)

    def replace(self, item_id: str, new: ItemT) -> None:
        """Put ``new`` where ``item_id`` stood, keeping the separators around it."""
        for n, item in enumerate(self.items):
            if item.id == item_id:
                new._layout = item._layout
                new.file = self.path
                self.items[n] = new
                return
        raise KeyError(item_id)

    def render(self) -> str:
        parts = [self.preamble]
        for item in self.items:
            parts += [item.render(), item._layout.gap, item._layout.between]
        return "".join(parts)


_META = re.compile(
    r"^[ \t]*(?:[-*][ \t]+)?\*\*(?P<label>[^*\n]{1,40}?)(?:[:\uff1a]\*\*|\*\*[ \t]*[:\uff1a])"
    r"[ \t]*(?P<value>.*?)[ \t]*$"
)
_DOC_ID_LABELS = frozenset(
    {"id", "document id", "doc id", "\u6587\u66f8\u756a\u53f7", "\u6587\u66f8id"}
)


def _metadata(preamble: str) -> dict[str, str]:
    """``**Label**: value`` lines of the document's metadata block (before its first section)."""
    out: dict[str, str] = {}
    for line in preamble.splitlines():
        if line.startswith("## "):
            break
        m = _META.match(line)
        if m and m["value"] and m["label"].strip().rstrip(":\uff1a") not in out:
            out[m["label"].strip().rstrip(":\uff1a")] = m["value"]
    return out


def _doc_id(text: str, path: str, meta: Mapping[str, str]) -> str | None:
    """The document's own ID: its metadata, its title (``# DES-002: …``) or its file name."""
    for label, value in meta.items():
        if normalize_label(label) in _DOC_ID_LABELS:
            return value.strip("`* ")
    title = re.search(r"^#[ \t]+(.+)$", text, re.MULTILINE)
    m = ID_RE.match(title[1]) if title else None
    if m and parse_id(m.group(0)):
        return m.group(0)
    m = re.match(r"([A-Z]+(?:-[A-Z0-9]+)*?-\d{3,})(?=[-.]|$)", path.rsplit("/", 1)[-1])
    return m[1] if m else None


def parse_document(
    text: str,
    path: str,
    kinds: tuple[str, ...],
    build: Callable[[RawBlock, ScannedBlock], Mapping[str, Any]],
    model: type[ItemT],
    *,
    top_kinds: tuple[str, ...] = (),
) -> SpecDocument[ItemT]:
    """Split ``text`` into ID blocks of ``kinds`` and build one ``model`` per block.

    Never raises on content: headings that look like an ID block but do not parse, and
    values a model rejects, become diagnostics, and the rest of the file still loads.
    """
    columns = model.column_aliases()

    def is_item_table(header: list[str]) -> bool:
        named = {columns.get(normalize_label(h.strip("*`"))) for h in header[1:]}
        return bool(named & {"title", "statement"})

    split = split_blocks(text, kinds, top_kinds=top_kinds, is_item_table=is_item_table)
    doc_type: Any = SpecDocument[model]  # type: ignore[valid-type]
    meta = _metadata(split.preamble)
    doc: SpecDocument[ItemT] = doc_type(
        path=path,
        meta=meta,
        doc_id=_doc_id(text, path, meta),
        preamble=split.preamble,
        headings=[Heading(line=ln, level=lv, text=tx) for ln, lv, tx in split.headings],
    )
    block_lines = {b.line for b in split.blocks}
    for ln, level, heading in split.headings:
        word = heading.strip().strip("*").split(":")[0].split("\uff1a")[0].split(" ")[0]
        word = word.strip("*")
        if (
            ln not in block_lines
            and level > 1
            and re.match(rf"^({'|'.join(kinds)})-[\w.-]*\d", word)  # not "T-SQL の導入"
            and parse_id(word) is None
        ):
            doc.diagnostics.append(
                Diagnostic(
                    file=path,
                    line=ln,
                    code="parse.bad-id",
                    message=f"heading {heading.strip()!r} looks like a {word.split('-')[0]} "
                    f"block but {word!r} is not a valid ID; expected e.g. "
                    f"{_EXAMPLE.get(word.split('-')[0], 'REQ-AUTH-001')}; "
                    "this section is not loaded",
                )
            )
    for ln, ident, child in split.groups:
        doc.groups.append(ident)
        doc.diagnostics.append(
            Diagnostic(
                file=path,
                line=ln,
                severity=Severity.INFO,
                code="parse.group",
                item=ident,
                message=f"{ident} has {child} inside its section: read as a group heading, "
                f"not an item (give {ident} its own section to make it one)",
            )
        )
    for number, line in enumerate(text.splitlines(), start=1):
        for ident in expand_ids(line):  # "FR-CRUD-001〜005" names all five
            if number not in block_lines:
                doc.references.append(
                    Reference(id=ident, file=path, line=number, context=line.strip()[:200])
                )
    for block in split.blocks:
        if block.form == "row":
            scanned = scan_row(block.lines[0], block.header, columns, model.list_attrs())
            if "title" in scanned.scalars:
                block.title = scanned.scalars.pop("title")
        else:
            scanned = scan_fields(block.lines, model.aliases(), model.list_attrs(), block.level)
        try:
            values = dict(build(block, scanned))
            if block.id in split.summary_rows:
                # ``| TASK-001 | … | HIGH | 1h | - |`` above ``### TASK-001``: the section
                # keeps its own values; the summary row fills the ones it does not state.
                row_line, header = split.summary_rows[block.id]
                row = RawBlock(block.id, "", 8, block.line, [row_line], form="row", header=header)
                row_scan = scan_row(row_line, header, columns, model.list_attrs())
                row_scan.scalars.pop("title", None)
                for key, value in build(row, row_scan).items():
                    if key not in ("title", "statement_line") and value and not values.get(key):
                        values[key] = value
            title = values.pop("title", block.title)
            item = model(
                id=block.id,
                title=title,
                file=path,
                line=block.line,
                extra=dict(scanned.extra),
                **values,
            )
        except ValidationError as exc:
            doc.diagnostics.append(
                Diagnostic(
                    file=path,
                    line=block.line,
                    code="parse.invalid",
                    item=block.id,
                    message=f"{block.id}: {exc.errors()[0]['msg']}",
                )
            )
            item = model(id=block.id, title=block.title, file=path, line=block.line)
        item._source = BlockSource(
            lines=block.lines,
            level=block.level,
            spans=scanned.spans,
            insert_at=scanned.last_field_end,
            snapshot=item.snapshot(),
            form=block.form,
            id_span=block.id_span,
            title_span=block.title_span,
        )
        item._layout = _Layout(gap=block.gap, between=block.between)
        doc.items.append(item)
    return doc


_EXAMPLE = {
    "REQ": "REQ-AUTH-001",
    "FR": "FR-AUTH-001",
    "NFR": "NFR-PERF-001",
    "ADR": "ADR-001",
    "TASK": "TASK-001",
    "DES": "DES-AUTH-001",
    "DESIGN": "DESIGN-001",
}


def field_values(scanned: ScannedBlock, fields: tuple[FieldDef, ...]) -> dict[str, Any]:
    """The parsed value of each declared field that the block has."""
    out: dict[str, Any] = {}
    for f in fields:
        if f.kind in ("list", "inline-list"):
            if f.attr in scanned.lists:
                out[f.attr] = scanned.lists[f.attr]
            elif f.attr in scanned.scalars:
                out[f.attr] = [scanned.scalars[f.attr]]
        elif f.attr in scanned.scalars:
            out[f.attr] = scanned.scalars[f.attr]
        elif f.attr in scanned.texts:
            out[f.attr] = scanned.texts[f.attr]
    return out
