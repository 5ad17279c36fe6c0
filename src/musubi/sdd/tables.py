"""Markdown pipe tables: cells with their exact columns, so one cell can be rewritten alone.

MUSUBI users keep much of a spec in tables: requirement lists (``| ID | 要件名 | EARS Pattern |
説明 |``), task lists (``| タスクID | タスク名 | 優先度 | 見積 | 依存 |``) and two-column field
tables inside a block (``| 優先度 | P0 |``). :func:`cells` cuts a row into cells and remembers
where each one's text starts and ends on the line; :func:`find_tables` finds the tables of a
file (outside code fences) with their header cells.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["Cell", "Table", "cells", "escape_cell", "find_tables", "is_row", "plain_cell"]

_ROW = re.compile(r"^[ \t]*\|")
_DELIMITER = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$")


@dataclass(frozen=True)
class Cell:
    text: str
    start: int  # column of the first character of ``text`` on the line
    end: int  # column just after it


@dataclass
class Table:
    header: list[str]  # header cell texts
    header_line: int  # 0-based line index of the header row
    rows: list[int]  # 0-based line indexes of the data rows


def is_row(line: str) -> bool:
    return _ROW.match(line) is not None


def cells(line: str) -> list[Cell]:
    """The cells of one table row (``|`` escaped as ``\\|`` stays inside a cell)."""
    bare = line.rstrip("\r\n")
    bounds = [m.start() for m in re.finditer(r"(?<!\\)\|", bare)]
    if not bounds:
        return []
    if bare[bounds[-1] + 1 :].strip():
        bounds.append(len(bare))
    out: list[Cell] = []
    for left, right in pairwise(bounds):
        raw = bare[left + 1 : right]
        lead = len(raw) - len(raw.lstrip(" \t"))
        text = raw.strip(" \t")
        out.append(Cell(text, left + 1 + lead, left + 1 + lead + len(text)))
    return out


def plain_cell(text: str) -> str:
    """A cell's text without emphasis or code marks: ``**REQ-001**`` -> ``REQ-001``."""
    return text.strip().strip("*`_").strip()


def escape_cell(value: str) -> str:
    return re.sub(r"(?<!\\)\|", r"\\|", value.replace("\r", " ").replace("\n", " "))


def find_tables(lines: list[str], skip: set[int]) -> list[Table]:
    """Tables in ``lines`` (a header row, a ``|---|`` delimiter row, then rows).

    ``skip`` holds indexes of lines inside code fences.
    """
    out: list[Table] = []
    i, n = 0, len(lines)
    while i + 1 < n:
        if i in skip or not is_row(lines[i]) or not _DELIMITER.match(lines[i + 1].rstrip("\r\n")):
            i += 1
            continue
        header = [c.text for c in cells(lines[i])]
        j = i + 2
        rows: list[int] = []
        while j < n and j not in skip and is_row(lines[j]):
            rows.append(j)
            j += 1
        out.append(Table(header, i, rows))
        i = j
    return out
