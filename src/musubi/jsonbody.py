"""Limits on JSON request bodies, checked on the raw bytes before anything parses them.

Python's ``json`` parses what later code cannot handle: nesting a few thousand levels deep
(a ``RecursionError`` in the parser, in Pydantic, in ``json.dumps`` when the request is
audited or forwarded), a lone UTF-16 surrogate escape such as ``"\\ud800"`` (a ``str`` that
cannot be encoded to UTF-8, so the upstream call, the tokenizer or the database fails), and
integers of any size (no column, quota counter or upstream API takes more than 64 bits).
:func:`check` refuses all three for every JSON body the server receives, whichever route or
parser (FastAPI's, the gateway's fast path, bulk import) reads it afterwards, so each of
them can trust what it gets. It costs a few regular-expression passes over the body; the
exact field is found (by parsing) only when a body is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from musubi.errors import InvalidInput

__all__ = ["INT64_MAX", "INT64_MIN", "MAX_DEPTH", "check"]

MAX_DEPTH = 64
"""Objects and arrays nested deeper than this are refused (OpenAI's JSON-schema limit for
structured outputs is 10 levels; tool schemas and SCIM payloads stay well under 20)."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_OPEN = frozenset(b"[{")
_REPLACE_PASSES = 4
# Every digit to "0", everything else to a space: 19 zeros in a row mark a long number.
_DIGIT_RUNS = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord(" ") for b in range(256))
# 19 digits or more, not the fraction or exponent of a float (strings are blanked first).
_LONG_INT = re.compile(rb"(?<![\d.eE+-])-?\d{19,}(?![\d.eE])")
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]")
# Escaped backslashes first, so "\\\\ud800" (a backslash, then text) is not read as an
# escape; then valid pairs; a surrogate escape left over (group 1) is a lone one.
_ESCAPES = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)
_SURROGATE = re.compile("[\ud800-\udfff]")


def check(raw: bytes, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`~musubi.errors.InvalidInput` (naming the field) if the JSON text in
    ``raw`` nests deeper than ``max_depth``, holds an integer outside 64 bits, or a string
    with a lone surrogate. Anything else, invalid JSON included, is left to the parser."""
    if not raw:
        return
    bare = _without_strings(raw)
    if _too_deep(bare.translate(None, _NOT_BRACKETS), max_depth):
        raise InvalidInput(
            f"body: JSON nested deeper than {max_depth} levels", field="body", limit=max_depth
        )
    long_numbers = b"0" * 19 in bare.translate(_DIGIT_RUNS)
    for match in _LONG_INT.finditer(bare) if long_numbers else ():
        if not INT64_MIN <= int(match[0]) <= INT64_MAX:
            field = _locate(raw, _is_big_int)
            raise InvalidInput(f"{field}: integer outside the 64-bit range", field=field)
    if _SURROGATE_HINT.search(raw) and any(m[1] for m in _ESCAPES.finditer(raw)):
        field = _locate(raw, _has_surrogate)
        raise InvalidInput(f"{field}: a lone UTF-16 surrogate escape is not text", field=field)


def _without_strings(raw: bytes) -> bytes:
    """``raw`` with every string literal emptied (``"a[b"`` -> ``""``)."""
    if b'"' not in raw:
        return raw
    if b'\\"' not in raw:  # no escaped quote: quotes alternate open, close (C speed)
        return b'""'.join(raw.split(b'"')[0::2])
    return _STRING.sub(b'""', raw)


def _too_deep(skeleton: bytes, limit: int) -> bool:
    """Whether the brackets in ``skeleton`` nest deeper than ``limit``. A few passes that
    each remove the innermost pairs (``bytes.replace``, in C) leave little of a typical
    body; what is left is counted bracket by bracket."""
    rest = skeleton.translate(_ONE_KIND)
    for _ in range(_REPLACE_PASSES):
        shorter = rest.replace(b"[]", b"")
        if len(shorter) == len(rest):
            return False  # nothing left, or unbalanced: the parser will say so
        rest, limit = shorter, limit - 1
    if len(rest) <= limit:
        return False
    depth = 0
    for byte in rest:
        if byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _is_big_int(value: Any) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not INT64_MIN <= value <= INT64_MAX
    )


def _has_surrogate(value: Any) -> bool:
    return isinstance(value, str) and _SURROGATE.search(value) is not None


def _locate(raw: bytes, bad: Callable[[Any], bool]) -> str:
    """The dotted path (``messages.0.content``) of the first value (or key) that is bad;
    ``body`` if the text does not parse or the whole body is the value."""
    return _SURROGATE.sub("\ufffd", _find(raw, bad))  # the path goes into the answer


def _find(raw: bytes, bad: Callable[[Any], bool]) -> str:
    try:
        root = json.loads(raw)
    except (ValueError, RecursionError):
        return "body"
    todo: list[tuple[str, Any]] = [("", root)]
    while todo:
        path, value = todo.pop()
        if bad(value):
            return path or "body"
        if isinstance(value, dict):
            for key, item in reversed(value.items()):
                sub = f"{path}.{key}" if path else str(key)
                if bad(key):
                    return sub
                todo.append((sub, item))
        elif isinstance(value, list):
            items = reversed(list(enumerate(value)))
            todo.extend((f"{path}.{i}" if path else str(i), v) for i, v in items)
    return "body"
