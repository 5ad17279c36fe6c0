"""The one ID grammar every reader shares.

Two forms exist side by side::

    REQ-AUTH-001      sequential: kind, optional scope, a number of three or more digits
    REQ-AUTH-K7Q2M4   distributed: kind, optional scope, five Crockford base32 characters and
                      one decimal check digit

Sequential IDs are what MUSUBI writes and what people read most easily, but two people adding
``REQ-AUTH-004`` on two branches collide on merge. Distributed IDs are drawn at random (25 bits,
one in 33 million per pair) and carry a check digit, so a typo is caught and a merge of branches
never clashes in practice. :func:`find_collisions` reports the clashes that do happen, from
either form.

Kinds: ``REQ`` requirement, ``ADR`` architecture decision, ``TASK`` task, ``DES`` design element.
Scopes are upper case letters/digits, in segments joined by ``-`` or ``.``
(``REQ-P4-001``, ``ADR-6.2-002``, ``TASK-INT-001``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from musubi.sdd.diagnostics import Diagnostic, Severity

__all__ = [
    "CROCKFORD",
    "ID_RE",
    "KINDS",
    "IdLocation",
    "SpecId",
    "check_digit",
    "find_collisions",
    "find_ids",
    "new_distributed_id",
    "next_sequential_id",
    "parse_id",
]

KINDS = ("REQ", "ADR", "TASK", "DES")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

_SEQ = r"\d{3,}"
_DIST = r"[0-9A-HJKMNP-TV-Z]{5}[0-9]"
ID_RE = re.compile(
    r"(?<![A-Za-z0-9_-])(?P<kind>REQ|ADR|TASK|DES)-"
    r"(?:(?P<scope>[A-Z0-9]+(?:[.-][A-Z0-9]+)*?)-)?"
    rf"(?P<number>{_SEQ}|{_DIST})(?![A-Za-z0-9_]|-\d)"
)


@dataclass(frozen=True, order=True)
class SpecId:
    kind: str
    scope: str | None
    number: str

    @property
    def distributed(self) -> bool:
        return not self.number.isdigit()

    @property
    def valid_check_digit(self) -> bool:
        return not self.distributed or check_digit(self.number[:5]) == self.number[5]

    def __str__(self) -> str:
        return "-".join(p for p in (self.kind, self.scope, self.number) if p)


def parse_id(text: str) -> SpecId | None:
    """Parse a whole string as an ID; ``None`` when it is not one."""
    m = ID_RE.fullmatch(text.strip())
    if m is None:
        return None
    return SpecId(m["kind"], m["scope"], m["number"])


def find_ids(text: str) -> list[tuple[str, int]]:
    """Every ID in ``text`` with its character offset, in order."""
    return [(m.group(0), m.start()) for m in ID_RE.finditer(text)]


def check_digit(body: str) -> str:
    total = sum((i + 1) * CROCKFORD.index(c) for i, c in enumerate(body.upper()))
    return str(total % 10)


def new_distributed_id(kind: str, scope: str | None = None, *, token: str | None = None) -> str:
    """A collision-free ID for work on parallel branches, e.g. ``REQ-AUTH-K7Q2M4``.

    ``token`` (five Crockford characters) is for tests; normally it is drawn at random.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ID kind {kind!r}; expected one of {', '.join(KINDS)}")
    body = token.upper() if token else "".join(secrets.choice(CROCKFORD) for _ in range(5))
    if len(body) != 5 or any(c not in CROCKFORD for c in body):
        raise ValueError("token must be five Crockford base32 characters")
    return str(SpecId(kind, scope.upper() if scope else None, body + check_digit(body)))


def next_sequential_id(kind: str, scope: str | None, existing: Iterable[str]) -> str:
    """The next free sequential ID of this kind and scope (``REQ-AUTH-004`` after ``-003``)."""
    scope = scope.upper() if scope else None
    numbers = [0]
    width = 3
    for text in existing:
        sid = parse_id(text)
        if sid and sid.kind == kind and sid.scope == scope and not sid.distributed:
            numbers.append(int(sid.number))
            width = max(width, len(sid.number))
    return str(SpecId(kind, scope, str(max(numbers) + 1).zfill(width)))


@dataclass(frozen=True)
class IdLocation:
    id: str
    file: str
    line: int


def find_collisions(definitions: Iterable[IdLocation]) -> list[Diagnostic]:
    """One error per extra definition of an ID, naming where the first one is.

    Also warns on distributed IDs whose check digit is wrong (usually a typo).
    """
    first: dict[str, IdLocation] = {}
    out: list[Diagnostic] = []
    for loc in definitions:
        sid = parse_id(loc.id)
        if sid is not None and not sid.valid_check_digit:
            out.append(
                Diagnostic(
                    file=loc.file,
                    line=loc.line,
                    severity=Severity.WARNING,
                    code="id.check-digit",
                    item=loc.id,
                    message=f"{loc.id}: check digit does not match; expected "
                    f"{sid.number[:5]}{check_digit(sid.number[:5])} (typo?)",
                )
            )
        if loc.id in first:
            prev = first[loc.id]
            out.append(
                Diagnostic(
                    file=loc.file,
                    line=loc.line,
                    severity=Severity.ERROR,
                    code="id.collision",
                    item=loc.id,
                    message=f"{loc.id} is defined twice: here and at {prev.file}:{prev.line} "
                    "(renumber one, or use a distributed ID: --distributed)",
                )
            )
        else:
            first[loc.id] = loc
    return out
