"""Cutting a file into chunks: syntax units, heading sections, or line windows.

* Code with a grammar: functions, methods and classes are units. A class with methods gives
  a ``class`` chunk (its header up to the first method) and one ``method`` chunk per method,
  whose text starts with the class header so the method is read in its class. Lines outside
  every unit (imports, module statements) become ``block`` chunks. A unit longer than
  ``max_lines`` is split into overlapping windows, each starting with the unit's first line.
* Markdown and spec documents: one ``section`` chunk per heading.
* Anything else: ``lines`` windows of ``max_lines`` with ``overlap``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from musubi.knowledge.languages import LANGUAGES, LanguageSpec, grammar

if TYPE_CHECKING:
    from tree_sitter import Node

__all__ = ["Chunk", "ChunkOptions", "chunk_file"]


@dataclass(frozen=True)
class ChunkOptions:
    max_lines: int = 80
    overlap: int = 10


@dataclass(frozen=True)
class Chunk:
    path: str
    language: str
    kind: str  # function | method | class | block | section | lines
    symbol: str
    start: int  # 1-based, inclusive
    end: int
    text: str


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_NAME_TYPES = {
    "identifier",
    "name",
    "constant",
    "type_identifier",
    "field_identifier",
    "simple_identifier",
    "property_identifier",
    "word",
}


def chunk_file(
    path: str, language: str, text: str, opts: ChunkOptions | None = None
) -> list[Chunk]:
    """Chunks of one file. Raises whatever the grammar raises (the indexer counts it)."""
    opts = opts or ChunkOptions()
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        return []
    if language == "markdown":
        return _markdown(path, lines, opts)
    if language in LANGUAGES:
        lang = grammar(language)
        if lang is not None:
            return _syntax(path, LANGUAGES[language], lang, text, lines, opts)
    return _windows(path, language, "lines", "", lines, 1, len(lines), opts, header="")


def _windows(
    path: str,
    language: str,
    kind: str,
    symbol: str,
    lines: list[str],
    start: int,
    end: int,
    opts: ChunkOptions,
    header: str,
) -> list[Chunk]:
    """Overlapping windows over lines ``start..end`` (1-based); blank-only windows dropped."""
    out: list[Chunk] = []
    step = max(1, opts.max_lines - opts.overlap)
    first = start
    while first <= end:
        last = min(end, first + opts.max_lines - 1)
        body = "\n".join(lines[first - 1 : last])
        if body.strip():
            text = f"{header}\n{body}" if header and first != start else body
            out.append(Chunk(path, language, kind, symbol, first, last, text))
        if last == end:
            break
        first += step
    return out


def _markdown(path: str, lines: list[str], opts: ChunkOptions) -> list[Chunk]:
    starts: list[tuple[int, str]] = []
    trail: list[tuple[int, str]] = []  # (level, title) of the enclosing headings
    fenced = False
    for i, line in enumerate(lines, 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            level = len(match.group(1))
            # Enclosing = a lower level, whatever levels were skipped: "## A" then "## B"
            # are siblings, not "A > B".
            trail = [(lv, t) for lv, t in trail if lv < level] + [(level, match.group(2))]
            starts.append((i, " > ".join(t for _, t in trail if t)))
    if not starts or starts[0][0] != 1:
        starts.insert(0, (1, ""))
    out: list[Chunk] = []
    for n, (first, title) in enumerate(starts):
        last = starts[n + 1][0] - 1 if n + 1 < len(starts) else len(lines)
        header = lines[first - 1] if title else ""
        out += _windows(path, "markdown", "section", title, lines, first, last, opts, header)
    return out


def _name(node: Node) -> str:
    named = node.child_by_field_name("name")
    if named is not None and named.text is not None:
        return named.text.decode("utf-8", "replace")
    for child in node.named_children:  # Go: type_declaration > type_spec(name)
        named = child.child_by_field_name("name")
        if child.type.endswith("spec") and named is not None and named.text is not None:
            return named.text.decode("utf-8", "replace")
    stack = [c for c in node.children if c.type not in ("block", "body", "class_body")]
    while stack:  # breadth-first for the first identifier (C declarators, Ruby constants)
        child = stack.pop(0)
        if child.type in _NAME_TYPES and child.text is not None:
            return child.text.decode("utf-8", "replace")
        if child.type.endswith(("declarator", "identifier")) or child.type in ("name",):
            stack.extend(child.children)
    return ""


class _Syntax:
    def __init__(self, path: str, spec: LanguageSpec, lines: list[str], opts: ChunkOptions):
        self.path, self.spec, self.lines, self.opts = path, spec, lines, opts
        self.chunks: list[Chunk] = []
        self.covered: list[tuple[int, int]] = []

    def unit(self, node: Node) -> tuple[Node, Node] | None:
        """(unit node, node whose range counts) for a unit or a wrapper around one."""
        if node.type in self.spec.functions or node.type in self.spec.classes:
            return node, node
        if node.type in self.spec.wrappers:
            for child in node.named_children:
                inner = self.unit(child)
                if inner is not None:
                    return inner[0], node
        return None

    def visit(self, node: Node, owner: str, header: str) -> None:
        for child in node.named_children:
            found = self.unit(child)
            if found is None:
                if child.named_child_count:
                    self.visit(child, owner, header)
                continue
            unit, outer = found
            if unit.type in self.spec.classes:
                self.klass(unit, outer, owner)
            else:
                self.function(unit, outer, owner, header)

    def emit(self, kind: str, symbol: str, first: int, last: int, header: str) -> None:
        self.covered.append((first, last))
        body = "\n".join(self.lines[first - 1 : last])
        if last - first + 1 <= self.opts.max_lines * 3 // 2:
            text = f"{header}\n{body}" if header else body
            self.chunks.append(Chunk(self.path, self.spec.name, kind, symbol, first, last, text))
            return
        head = "\n".join(filter(None, [header, self.lines[first - 1]]))
        windows = _windows(
            self.path, self.spec.name, kind, symbol, self.lines, first, last, self.opts, head
        )
        if header and windows:
            windows[0] = Chunk(**{**windows[0].__dict__, "text": f"{header}\n{windows[0].text}"})
        self.chunks += windows

    def function(self, unit: Node, outer: Node, owner: str, header: str) -> None:
        name = _name(unit)
        kind = "method" if owner else "function"
        symbol = f"{owner}.{name}" if owner else name
        self.emit(kind, symbol, outer.start_point[0] + 1, outer.end_point[0] + 1, header)

    def klass(self, unit: Node, outer: Node, owner: str) -> None:
        name = _name(unit)
        symbol = f"{owner}.{name}" if owner and name else name or owner
        first, last = outer.start_point[0] + 1, outer.end_point[0] + 1
        inner = _Syntax(self.path, self.spec, self.lines, self.opts)
        head_line = self.lines[unit.start_point[0]].rstrip()
        inner.visit(unit, symbol, head_line)
        if not inner.chunks:
            self.emit("class", symbol, first, last, "")
            return
        first_unit = min(c.start for c in inner.chunks)
        self.emit("class", symbol, first, max(first, first_unit - 1), "")
        self.chunks += inner.chunks
        self.covered.append((first, last))

    def gaps(self) -> None:
        covered = [False] * (len(self.lines) + 2)
        for first, last in self.covered:
            for i in range(first, last + 1):
                covered[i] = True
        i = 1
        while i <= len(self.lines):
            if covered[i]:
                i += 1
                continue
            j = i
            while j + 1 <= len(self.lines) and not covered[j + 1]:
                j += 1
            self.chunks += _windows(
                self.path, self.spec.name, "block", "", self.lines, i, j, self.opts, ""
            )
            i = j + 1


def _syntax(
    path: str, spec: LanguageSpec, lang: object, text: str, lines: list[str], opts: ChunkOptions
) -> list[Chunk]:
    from tree_sitter import Language, Parser

    assert isinstance(lang, Language)
    tree = Parser(lang).parse(text.encode("utf-8"))
    walker = _Syntax(path, spec, lines, opts)
    walker.visit(tree.root_node, "", "")
    walker.gaps()
    return sorted(walker.chunks, key=lambda c: (c.start, c.end))
