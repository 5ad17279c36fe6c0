"""Fields inside ID blocks, with their exact place, and field-level patching.

:mod:`musubi.sdd.blocks` cuts a file into a preamble and ID blocks that concatenate back to the
file byte for byte. Inside a block, :func:`scan_fields` finds ``**Field**: value`` lines and
their variants (bullets, plain ``Label:``, sub-headings, two-column table rows such as
``| 優先度 | P0 |``) and :func:`scan_row` the cells of a table-row block; both remember where
each value sits, so :func:`patch_block` can change one value without touching a byte around it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from musubi.sdd.blocks import (
    FENCE,
    FW_COLON,
    HEADING,
    RawBlock,
    SplitDocument,
    split_blocks,
    strip_eol,
)
from musubi.sdd.ids import ID_RE
from musubi.sdd.tables import Cell, cells, escape_cell, is_row

__all__ = [
    "Edit",
    "FieldSpan",
    "RawBlock",
    "ScannedBlock",
    "SplitDocument",
    "eol_of",
    "heading_level",
    "normalize_label",
    "patch_block",
    "scan_fields",
    "scan_row",
    "split_blocks",
]

_FW_COLON = FW_COLON
_HEADING = HEADING
_FENCE = FENCE
_BULLET = re.compile(r"^(?P<prefix>[ \t]*(?:[-*+]|\d+[.)])[ \t]+(?:\[[ xX]\][ \t]+)?)(?P<text>.*)$")
_BOLD = re.compile(r"^(?P<pre>[ \t]*(?:[-*+][ \t]+)?)\*\*(?P<label>[^*\n]{1,60}?)\*\*(?P<rest>.*)$")
_PLAIN = re.compile(
    r"^(?P<pre>[ \t]*(?:[-*+][ \t]+)?)(?P<label>[^\W\d][\w /()-]{0,40}?)[ \t]*[:" + _FW_COLON + "]"
)


def eol_of(line: str) -> str:
    if line.endswith("\r\n"):
        return "\r\n"
    return "\n" if line.endswith("\n") else ""


_strip_eol = strip_eol


def normalize_label(label: str) -> str:
    return re.sub(r"\s+", " ", label.strip().strip(":" + _FW_COLON).strip()).lower()


def heading_level(line: str) -> int | None:
    m = _HEADING.match(_strip_eol(line))
    return len(m["hashes"]) if m else None


SpanKind = Literal["scalar", "inline-list", "list", "text"]


@dataclass
class FieldSpan:
    name: str
    label: str
    kind: SpanKind
    start: int  # index into the block's lines
    end: int  # exclusive
    value_start: int = 0  # columns of the value on line ``start`` (scalar kinds)
    value_end: int = 0
    item_prefix: str = "- "
    quote: bool = False
    cell: bool = False  # the value is a table cell: ``|`` must be escaped


@dataclass
class ScannedBlock:
    scalars: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    spans: dict[str, FieldSpan] = field(default_factory=dict)
    paragraphs: list[tuple[int, int, str]] = field(default_factory=list)
    last_field_end: int = 1


def _label_match(line: str, aliases: Mapping[str, str], level: int) -> tuple[str, str, int] | None:
    """(label, value, value column) when ``line`` is a field line, else None."""
    bare = _strip_eol(line)
    m = _BOLD.match(bare)
    if m:
        label, rest = m["label"], m["rest"]
        col = m.end("label") + 2
        if label.rstrip().endswith((":", _FW_COLON)):
            label = label.rstrip()[:-1]
        else:
            colon = re.match(r"[ \t]*[:" + _FW_COLON + "]", rest)
            if colon is None:
                return None
            col += colon.end()
        lead = len(bare[col:]) - len(bare[col:].lstrip(" \t"))
        return label.strip(), bare[col:].strip(), col + lead
    h = _HEADING.match(bare)
    if h and len(h["hashes"]) > level and normalize_label(h["text"]) in aliases:
        return h["text"].strip(), "", len(bare)
    p = _PLAIN.match(bare)
    if p and normalize_label(p["label"]) in aliases:
        col = p.end()
        lead = len(bare[col:]) - len(bare[col:].lstrip(" \t"))
        return p["label"].strip(), bare[col:].strip(), col + lead
    return None


def scan_fields(
    lines: list[str], aliases: Mapping[str, str], list_names: frozenset[str], level: int = 3
) -> ScannedBlock:
    """Find the fields of one block (``lines[0]`` is its heading)."""
    out = ScannedBlock()
    i, n = 1, len(lines)
    para: list[int] = []

    def flush() -> None:
        if para:
            text = " ".join(_strip_eol(lines[j]).strip().lstrip(">").strip() for j in para)
            out.paragraphs.append((para[0], para[-1] + 1, text))
            para.clear()

    while i < n:
        line = lines[i]
        if is_row(line):
            flush()
            _table_field(line, i, aliases, list_names, out)
            i += 1
            continue
        found = _label_match(line, aliases, level)
        if found is None:
            if _FENCE.match(line):
                flush()
                j = i + 1
                while j < n and not _FENCE.match(lines[j]):
                    j += 1
                if j > i + 1:
                    body = " ".join(_strip_eol(x).strip() for x in lines[i + 1 : j])
                    out.paragraphs.append((i + 1, j, body))
                i = j + 1
                continue
            if line.strip() and not _HEADING.match(_strip_eol(line)) and not _BULLET.match(line):
                para.append(i)
            else:
                flush()
            i += 1
            continue
        flush()
        label, value, col = found
        name = aliases.get(normalize_label(label), f"extra:{label}")
        if value:
            bare = _strip_eol(line)
            end_col = len(bare.rstrip(" \t"))
            if name in list_names:
                out.lists[name] = [v for v in re.split(r"\s*[,;\u3001]\s*", value) if v]
                kind: SpanKind = "inline-list"
            elif name.startswith("extra:"):
                out.extra[label] = value
                kind = "scalar"
            else:
                out.scalars[name] = value
                kind = "scalar"
            out.spans[name] = FieldSpan(name, label, kind, i, i + 1, col, end_col)
            out.last_field_end = i + 1
            i += 1
            continue
        j = i + 1
        while j < n and not lines[j].strip():
            j += 1
        if j < n and _FENCE.match(lines[j]):
            k = j + 1
            while k < n and not _FENCE.match(lines[k]):
                k += 1
            out.texts[name] = " ".join(_strip_eol(x).strip() for x in lines[j + 1 : k]).strip()
            out.spans[name] = FieldSpan(name, label, "text", j + 1, k)
            i = min(k + 1, n)
        elif j < n and _BULLET.match(lines[j]):
            items: list[str] = []
            k = j
            prefix = _BULLET.match(lines[j])["prefix"]  # type: ignore[index]
            while k < n:
                b = _BULLET.match(lines[k])
                depth = len(b["prefix"]) - len(b["prefix"].lstrip()) if b else 0
                top = len(prefix) - len(prefix.lstrip())
                if b and depth < top:
                    break
                if b and depth == top:
                    items.append(b["text"].strip())
                elif lines[k].strip() and lines[k][:1] in " \t" and items:
                    items[-1] += " " + lines[k].strip()
                else:
                    break
                k += 1
            if not name.startswith("extra:"):
                out.lists[name] = items
            out.spans[name] = FieldSpan(name, label, "list", j, k, item_prefix=prefix)
            i = k
        elif (
            j < n
            and not _HEADING.match(_strip_eol(lines[j]))
            and not _label_match(lines[j], aliases, level)
        ):
            k = j
            while k < n and lines[k].strip() and not _label_match(lines[k], aliases, level):
                k += 1
            quote = lines[j].lstrip().startswith(">")
            text = " ".join(_strip_eol(x).strip().lstrip(">").strip() for x in lines[j:k])
            out.texts[name] = text
            out.spans[name] = FieldSpan(name, label, "text", j, k, quote=quote)
            i = k
        else:
            i += 1
            continue
        out.last_field_end = out.spans[name].end
    flush()
    return out


def _store(
    name: str, label: str, cell: Cell, line: int, list_names: frozenset[str], out: ScannedBlock
) -> None:
    value = cell.text
    if name.startswith("extra:"):
        out.extra[label] = value
    elif name in list_names:
        out.lists[name] = [value]
    else:
        out.scalars[name] = value
    out.spans[name] = FieldSpan(
        name, label, "scalar", line, line + 1, cell.start, cell.end, cell=True
    )


def _table_field(
    line: str, i: int, aliases: Mapping[str, str], list_names: frozenset[str], out: ScannedBlock
) -> None:
    """A ``| Label | value |`` row inside a block: a field when the label is a known one."""
    row = cells(line)
    if len(row) != 2:
        return
    name = aliases.get(normalize_label(row[0].text.strip("*`")))
    if name is None or name in out.spans or not row[1].text or set(row[1].text) <= set("-: "):
        return
    _store(name, row[0].text, row[1], i, list_names, out)
    out.last_field_end = max(out.last_field_end, i + 1)


def scan_row(
    line: str, header: list[str], aliases: Mapping[str, str], list_names: frozenset[str]
) -> ScannedBlock:
    """The fields of a table-row block, one per column whose header is a known label.

    ``title`` (from a title column) comes back in ``scalars`` with its span like any field.
    """
    out = ScannedBlock()
    row = cells(line)
    for col, label in enumerate(header[1:], start=1):
        if col >= len(row):
            break
        name = aliases.get(normalize_label(label.strip("*`")), f"extra:{label}")
        if name in out.spans or (name.startswith("extra:") and not label.strip()):
            continue
        if row[col].text and row[col].text not in ("-", "\u2014"):
            _store(name, label, row[col], 0, list_names, out)
        else:
            out.spans[name] = FieldSpan(
                name, label, "scalar", 0, 1, row[col].start, row[col].end, cell=True
            )
    out.last_field_end = 1
    return out


@dataclass
class Edit:
    """A new value for one field. ``value`` is a str (scalar, text) or a list (list kinds)."""

    name: str
    label: str
    value: str | list[str]
    kind: SpanKind = "scalar"


def _render_items(items: list[str], prefix: str, old: dict[str, str], eol: str) -> list[str]:
    """Bullets for ``items``, reusing the original line of every item that is still there."""
    fresh = re.sub(r"\[[xX]\]", "[ ]", prefix)
    by_id: dict[str, str] = {}
    for text, raw in old.items():
        m = ID_RE.match(text)
        if m and m.start() == 0:
            by_id.setdefault(m.group(0), raw)
    return [old.get(item) or by_id.get(item) or f"{fresh}{item}{eol}" for item in items]


def _field_style(line: str) -> tuple[str, bool, str]:
    """(prefix, bold, trailing spaces) of a field line, to write new fields the same way."""
    bare = _strip_eol(line)
    trail = bare[len(bare.rstrip(" ")) :]
    m = _BOLD.match(bare)
    if m:
        return m["pre"], True, trail
    p = _PLAIN.match(bare)
    if p:
        return p["pre"], False, trail
    return "", True, "  "


def patch_block(
    lines: list[str], spans: Mapping[str, FieldSpan], edits: list[Edit], insert_at: int
) -> list[str]:
    """Apply ``edits`` to a block, changing only the spans they name.

    Fields without a span are inserted at ``insert_at`` in canonical ``**Label**: value`` form.
    """
    eol = eol_of(lines[0]) or "\n"
    out = list(lines)
    located = [(spans[e.name], e) for e in edits if e.name in spans]
    missing = [e for e in edits if e.name not in spans]
    for span, edit in sorted(located, key=lambda pair: pair[0].start, reverse=True):
        if span.kind in ("scalar", "inline-list"):
            value = edit.value if isinstance(edit.value, str) else ", ".join(edit.value) or "None"
            if span.cell:
                value = escape_cell(value)
            line = out[span.start]
            out[span.start] = line[: span.value_start] + value + line[span.value_end :]
        elif span.kind == "list":
            items = edit.value if isinstance(edit.value, list) else [edit.value]
            old = {}
            for raw in lines[span.start : span.end]:
                b = _BULLET.match(raw)
                if b:
                    old[b["text"].strip()] = raw
            out[span.start : span.end] = _render_items(items, span.item_prefix, old, eol)
        else:
            value = edit.value if isinstance(edit.value, str) else " ".join(edit.value)
            indent = "> " if span.quote else ""
            out[span.start : span.end] = [f"{indent}{value}{eol}"]
    added: list[str] = []
    pre, bold, trail = "", True, ""
    for span in spans.values():
        if span.end == insert_at and span.kind in ("scalar", "inline-list"):
            pre, bold, trail = _field_style(lines[span.start])
    for edit in missing:
        if isinstance(edit.value, list) and edit.kind == "list":
            added += [eol, f"**{edit.label}**:{eol}"] + [f"- {v}{eol}" for v in edit.value]
        elif edit.kind == "text":
            added += [eol, f"**{edit.label}**:{eol}", f"{edit.value}{eol}"]
        else:
            shown = edit.value if isinstance(edit.value, str) else ", ".join(edit.value) or "None"
            label = f"**{edit.label}**" if bold else edit.label
            added.append(f"{pre}{label}: {shown}{trail}{eol}")
    if added:
        if insert_at <= 1:
            added = [eol, *added] if out[1:2] != [eol] else added
            insert_at = 2 if len(out) > 1 and not out[1].strip() else 1
        out[insert_at:insert_at] = added
    if out and not eol_of(out[-1]) and len(out) > len(lines):
        out[-1] += eol
    return out
