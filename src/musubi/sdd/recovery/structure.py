"""The parts of a source file that say what it is about.

A regex reader, not a parser: it works the same way on Java, C#, TypeScript, Go and Python
well enough for retrieval. A file is split into *parts* with different weight as evidence:

- ``name``: the file name and the classes, interfaces and structs it declares;
- ``method``: names of the functions and methods it declares;
- ``field``: names of declared variables, fields and parameters;
- ``type``: the types it refers to (``BeanTourist`` in ``BeanTourist pTourist``);
- ``comment``: comments and docstrings;
- ``string``: string literals (messages, page names, SQL);
- ``code``: every other identifier in the code.

:attr:`CodeStructure.references` keeps the raw identifiers, so a caller can find which other
files of a corpus this file mentions by name (the code-structure evidence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePath

__all__ = ["PARTS", "CodeStructure", "parse_code"]

PARTS = ("name", "method", "field", "type", "comment", "string", "code")

_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_DOCSTRING = re.compile(r'"""(.*?)"""|\'\'\'(.*?)\'\'\'', re.S)
_LINE_COMMENT = re.compile(r"(?<![:\"'])//[^\n]*|(?:^|(?<=\s))#(?![!\[{])[^\n]*", re.M)
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`[^`]*`')
_DECLARED_TYPE = re.compile(r"\b(?:class|interface|enum|struct|trait|record|type)\s+([A-Za-z_]\w*)")
_FUNCTION = re.compile(r"\b(?:def|function|func|fn|fun)\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)")
_TYPED_CALLABLE = re.compile(r"\b([A-Za-z_][\w.]*(?:<[^<>()]*>)?(?:\[\])*)\s+([A-Za-z_]\w*)\s*\(")
_TYPED_VARIABLE = re.compile(
    r"\b([A-Z][\w.]*(?:<[^<>()]*>)?(?:\[\])*|int|long|double|float|boolean|char|byte|short)"
    r"\s+([A-Za-z_]\w*)\s*(?=[;=,)])"
)
_PY_PARAM = re.compile(r"\b([a-z_]\w*)\s*:\s*([A-Za-z_][\w.\[\], |]*)")
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")
_NOT_A_TYPE = frozenset(
    {"new", "return", "throw", "else", "case", "await", "yield", "in", "of", "not", "and", "or"}
)


@dataclass
class CodeStructure:
    """Text of each part of one source file, and the raw identifiers it uses."""

    parts: dict[str, list[str]] = field(default_factory=lambda: {part: [] for part in PARTS})
    references: set[str] = field(default_factory=set)

    def add(self, part: str, text: str) -> None:
        self.parts[part].append(text)


def _cut(pattern: re.Pattern[str], text: str, into: list[str]) -> str:
    """Move every match of ``pattern`` into ``into`` and blank it out of ``text``."""

    def keep(match: re.Match[str]) -> str:
        into.append(match.group(0))
        return " " * len(match.group(0))

    return pattern.sub(keep, text)


def parse_code(path: str, text: str) -> CodeStructure:
    """Split a source file into weighted parts (see the module docstring)."""
    out = CodeStructure()
    out.add("name", PurePath(path).stem)
    comments: list[str] = []
    strings: list[str] = []
    body = _cut(_BLOCK_COMMENT, text, comments)
    body = _cut(_DOCSTRING, body, comments)
    body = _cut(_STRING, body, strings)
    body = _cut(_LINE_COMMENT, body, comments)
    for comment in comments:
        out.add("comment", comment)
    for literal in strings:
        out.add("string", literal.strip("\"'`"))
    for match in _DECLARED_TYPE.finditer(body):
        out.add("name", match.group(1))
    for match in _FUNCTION.finditer(body):
        out.add("method", match.group(1))
    for match in _TYPED_CALLABLE.finditer(body):
        if match.group(1) not in _NOT_A_TYPE:
            out.add("method", match.group(2))
            out.add("type", match.group(1))
    for match in _TYPED_VARIABLE.finditer(body):
        out.add("type", match.group(1))
        out.add("field", match.group(2))
    for match in _PY_PARAM.finditer(body):
        out.add("field", match.group(1))
        out.add("type", match.group(2))
    out.add("code", body)
    out.references.update(_IDENTIFIER.findall(body))
    return out
