"""CSV and JSON in and out: the body of an import becomes numbered items, rows become text.

Only what makes the whole file unreadable fails the whole import (not UTF-8, JSON that
does not parse, a CSV header that is missing or repeats a column, too many items). A bad
row or item is kept as an item with an ``error``, so it fails alone with its line number.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from musubi.errors import InvalidInput, PayloadTooLarge

__all__ = ["MAX_ITEMS", "Format", "RawItem", "parse", "render"]

Format = Literal["csv", "json"]

MAX_ITEMS = 10_000
"""Items per import; more is refused (413) before anything is applied."""


@dataclass(frozen=True)
class RawItem:
    """One row or item as read: its fields, or why it could not be read."""

    index: int  # 0-based position among the items
    line: int | None  # CSV: the line the row starts on (the header is line 1)
    data: dict[str, Any]
    error: str | None = None


def parse(body: bytes, fmt: Format, kind: str, *, max_items: int = MAX_ITEMS) -> list[RawItem]:
    """The items of an import of ``kind`` (a JSON export names its kind; it must match)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the body is not UTF-8 text ({exc.reason})", field="body") from exc
    if fmt == "csv":
        return _parse_csv(text, max_items)
    return _parse_json(text, kind, max_items)


def _too_many(max_items: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"more than {max_items} items; split the import into smaller files")


def _parse_json(text: str, kind: str, max_items: int) -> list[RawItem]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", field="body") from exc
    if isinstance(doc, dict) and set(doc) <= {"kind", "items"} and "items" in doc:
        if doc.get("kind", kind) != kind:
            raise InvalidInput(f"this is an export of {doc['kind']!r}, not {kind!r}", field="kind")
        doc = doc["items"]
    if not isinstance(doc, list):
        raise InvalidInput('expected a JSON array of items or {"items": [...]}', field="body")
    if len(doc) > max_items:
        raise _too_many(max_items)
    return [
        RawItem(i, None, x) if isinstance(x, dict) else RawItem(i, None, {}, "not a JSON object")
        for i, x in enumerate(doc)
    ]


class _Lines:
    """The lines of a text, read one by one; ``pos`` can be moved back to resume."""

    def __init__(self, text: str) -> None:
        self.lines = io.StringIO(text, newline="").readlines()
        self.pos = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _records(text: str) -> Iterator[tuple[int, list[str] | str]]:
    """(first line number, cells or an error) of each CSV record.

    A broken record (a stray quote, an unterminated quoted cell) is reported on the line
    it starts, and reading resumes on the next line, so one bad row spoils no other.
    """
    src = _Lines(text)
    reader = csv.reader(src, strict=True)
    while src.pos < len(src.lines):
        start = src.pos
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start + 1, f"malformed CSV: {exc}"
            src.pos = start + 1
            reader = csv.reader(src, strict=True)
            continue
        yield start + 1, cells


def _parse_csv(text: str, max_items: int) -> list[RawItem]:
    records = _records(text)
    header: list[str] | None = None
    for line, cells in records:
        if isinstance(cells, str):
            raise InvalidInput(f"line {line}: the header is {cells}", field="body")
        if cells:
            header = [c.strip() for c in cells]
            break
    if header is None:
        raise InvalidInput("the CSV is empty: the first line must name the columns", field="body")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if "" in header or repeated:
        raise InvalidInput(f"the header has empty or repeated columns: {repeated}", field="body")
    items: list[RawItem] = []
    for line, cells in records:
        if not isinstance(cells, str) and not any(cells):
            continue  # blank lines are not items
        if len(items) == max_items:
            raise _too_many(max_items)
        index = len(items)
        if isinstance(cells, str):
            items.append(RawItem(index, line, {}, cells))
        elif len(cells) != len(header):
            error = f"expected {len(header)} cells (one per column), found {len(cells)}"
            items.append(RawItem(index, line, {}, error))
        else:
            items.append(RawItem(index, line, dict(zip(header, cells, strict=True))))
    return items


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: Format, kind: str) -> str:
    """Rows as CSV (header first) or as ``{"kind", "items"}``; both import back."""
    if fmt == "json":
        doc = {"kind": kind, "items": list(rows)}
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(row.get(c)) for c in columns] for row in rows)
    return out.getvalue()
