"""The one ID grammar every reader shares.

An ID is a kind, optional scope segments and a number, joined by ``-`` (``.`` also works
between numbers)::

    REQ-AUTH-001      sequential: kind, optional scope, a number of three or more digits
    REQ-001-KG-001    scope segments may be numbers or words (``REQ-001-NFR-003``)
    TASK-1.1          hierarchical: a short number after a numeric segment (``REQ-004-01``,
                      ``TASK-001-01``); a short number after a word (``REQ-AUTH-02``) is
                      rejected, as it is usually a typo for ``REQ-AUTH-002``
    REQ-004-N01       a final segment of letters then digits
    REQ-AUTH-K7Q2M4   distributed: kind, optional scope, five Crockford base32 characters and
                      one decimal check digit

Sequential IDs are what MUSUBI writes and what people read most easily, but two people adding
``REQ-AUTH-004`` on two branches collide on merge. Distributed IDs are drawn at random (25 bits,
one in 33 million per pair) and carry a check digit, so a typo is caught and a merge of branches
never clashes in practice. :func:`find_collisions` reports the clashes that do happen, from
either form.

Kinds, as MUSUBI users write them: requirements ``REQ``, ``FR``, ``NFR``; design records
``ADR``, ``DES``, ``DESIGN``; tasks ``TASK``, ``TSK``, ``T``. :data:`KIND_GROUPS` says which
kinds each document type holds. Scopes are upper case letters/digits, in segments joined by
``-`` or ``.`` (``REQ-P4-001``, ``ADR-6.2-002``, ``TASK-INT-001``, ``TASK-V2-001``).
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from musubi.sdd.diagnostics import Diagnostic, Severity

__all__ = [
    "CROCKFORD",
    "ID_RE",
    "KINDS",
    "KIND_GROUPS",
    "IdLocation",
    "SpecId",
    "check_digit",
    "expand_ids",
    "find_collisions",
    "find_ids",
    "new_distributed_id",
    "next_id_in_style",
    "next_sequential_id",
    "parse_id",
]

KIND_GROUPS: dict[str, tuple[str, ...]] = {
    "requirements": ("REQ", "FR", "NFR"),
    "design": ("ADR", "DES", "DESIGN"),
    "tasks": ("TASK", "TSK", "T"),
}
KINDS = tuple(k for group in KIND_GROUPS.values() for k in group)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

_DIST = r"[0-9A-HJKMNP-TV-Z]{5}[0-9]"
_SEG = r"[A-Z0-9]+"
# Longest kinds first, so DESIGN is not read as DES and NFR not as FR.
_KIND = "|".join(sorted(KINDS, key=len, reverse=True))
ID_RE = re.compile(
    rf"(?<![A-Za-z0-9_-])(?P<kind>{_KIND})-"
    rf"(?:(?P<scope>{_SEG}(?:[.-]{_SEG})*?)(?P<sep>[.-]))?"
    rf"(?P<number>\d{{3,}}|{_DIST}|[A-Z]+\d+|\d{{1,2}})"
    r"(?![A-Za-z0-9_]|[.-][A-Za-z0-9])"
)


def _valid(m: re.Match[str]) -> bool:
    """The rules a regular expression cannot say simply (see the module docstring)."""
    number, scope = m["number"], m["scope"]
    if number.isdigit() and len(number) < 3:
        return scope is not None and re.split(r"[.-]", scope)[-1].isdigit()
    if not number.isdigit() and re.fullmatch(_DIST, number) is None:
        return scope is not None  # REQ-004-N01, never a bare REQ-N01
    return True


@dataclass(frozen=True, order=True)
class SpecId:
    kind: str
    scope: str | None
    number: str
    sep: str = "-"

    @property
    def distributed(self) -> bool:
        return re.fullmatch(_DIST, self.number) is not None and not self.number.isdigit()

    @property
    def valid_check_digit(self) -> bool:
        return not self.distributed or check_digit(self.number[:5]) == self.number[5]

    def __str__(self) -> str:
        if self.scope:
            return f"{self.kind}-{self.scope}{self.sep}{self.number}"
        return f"{self.kind}-{self.number}"


def _spec_id(m: re.Match[str]) -> SpecId:
    return SpecId(m["kind"], m["scope"], m["number"], m["sep"] or "-")


def parse_id(text: str) -> SpecId | None:
    """Parse a whole string as an ID; ``None`` when it is not one."""
    m = ID_RE.fullmatch(text.strip())
    if m is None or not _valid(m):
        return None
    return _spec_id(m)


def find_ids(text: str) -> list[tuple[str, int]]:
    """Every ID in ``text`` with its character offset, in order."""
    return [(m.group(0), m.start()) for m in ID_RE.finditer(text) if _valid(m)]


_MORE = re.compile(r"[ \t]*(?P<op>[,\u3001]|[~\u301c\uff5e])[ \t]*(?P<num>\d+)(?![\w-])")


def expand_ids(text: str, kinds: tuple[str, ...] | None = None) -> list[str]:
    """IDs in a list as people write them, shorthands expanded, without repeats.

    ``TASK-002,003,004`` -> TASK-002, TASK-003, TASK-004; ``FR-CRUD-001〜003`` and
    ``TASK-001-01~03`` -> the whole range.
    """
    out: list[str] = []

    def add(ident: str) -> None:
        if ident not in out and (kinds is None or ident.split("-")[0] in kinds):
            out.append(ident)

    for m in ID_RE.finditer(text):
        if not _valid(m):
            continue
        add(m.group(0))
        sid = _spec_id(m)
        if not sid.number.isdigit():
            continue
        pos, last = m.end(), int(sid.number)
        while more := _MORE.match(text, pos):
            num = int(more["num"])
            if more["op"] in ",\u3001":
                numbers = [num]
            elif num > last and num - last <= 200:
                numbers = list(range(last + 1, num + 1))
            else:
                break
            for n in numbers:
                add(str(SpecId(sid.kind, sid.scope, str(n).zfill(len(sid.number)), sid.sep)))
            pos, last = more.end(), num
    return out


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
    """The next free sequential ID of this kind and scope (``REQ-AUTH-004`` after ``-003``).

    Width and separator follow the existing IDs of that scope (``TASK-1.3`` after ``TASK-1.2``).
    """
    scope = scope.upper() if scope else None
    numbers = [0]
    width = 3
    seps: Counter[str] = Counter()
    for text in existing:
        sid = parse_id(text)
        if sid and sid.kind == kind and sid.scope == scope and sid.number.isdigit():
            numbers.append(int(sid.number))
            width = len(sid.number) if len(numbers) == 2 else max(width, len(sid.number))
            seps[sid.sep] += 1
    sep = seps.most_common(1)[0][0] if seps else "-"
    return str(SpecId(kind, scope, str(max(numbers) + 1).zfill(width), sep))


def next_id_in_style(kind: str, doc_ids: Iterable[str], known: Iterable[str]) -> str:
    """A new sequential ID written like the last one of the document, unique in ``known``.

    After ``TASK-2.3`` comes ``TASK-2.4``, after ``REQ-001-KG-004`` ``REQ-001-KG-005``, after
    ``T-108`` ``T-109``; a document with none of ``kind``'s group yet gets ``TASK-001``.
    """
    group = next((g for g in KIND_GROUPS.values() if kind in g), (kind,))
    last = None
    for text in doc_ids:
        sid = parse_id(text)
        if sid and sid.kind in group and sid.number.isdigit():
            last = sid
    if last is None:
        return next_sequential_id(kind, None, known)
    return next_sequential_id(last.kind, last.scope, known)


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
            # Design records are often numbered per document (each design's ADR-001): the
            # clash makes references ambiguous but is not an error in either document.
            per_document = prev.file != loc.file and loc.id.split("-")[0] in KIND_GROUPS["design"]
            out.append(
                Diagnostic(
                    file=loc.file,
                    line=loc.line,
                    severity=Severity.WARNING if per_document else Severity.ERROR,
                    code="id.collision",
                    item=loc.id,
                    message=f"{loc.id} is defined twice: here and at {prev.file}:{prev.line} "
                    + (
                        "(references to it are ambiguous; number design records per project, "
                        "e.g. ADR-003-001, to tell them apart)"
                        if per_document
                        else "(renumber one, or use a distributed ID: --distributed)"
                    ),
                )
            )
        else:
            first[loc.id] = loc
    return out
