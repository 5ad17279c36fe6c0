"""Delta specs: ``storage/changes/<id>.md``, merged into the specs by ``change apply``.

A delta has sections ``## ADDED Requirements``, ``## MODIFIED Requirements``,
``## REMOVED Requirements`` and ``## RENAMED Requirements`` (``### ADDED`` etc. as in
MUSUBI's older template also work). ADDED and MODIFIED hold full ``### REQ-…`` blocks;
REMOVED lists IDs (``- REQ-AUTH-004: reason``); RENAMED lists pairs
(``- REQ-AUTH-002 → REQ-AUTH-010: New title``, ``->`` works too). ``**Target**:`` in the
header names the requirements file that receives ADDED blocks.

HTML comments (``<!-- … -->``, as in the template's examples) are not operations. An ID is
the subject of one operation at most within a delta, and ADDED IDs are new.

:func:`apply_change` checks everything first and writes nothing when any check fails; each
file is then written atomically. Blocks are copied verbatim from the delta.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

from pydantic import BaseModel

from musubi.errors import Conflict, InvalidInput, NotFound
from musubi.sdd.diagnostics import Diagnostic, Severity
from musubi.sdd.files import atomic_write, read_text, relpath
from musubi.sdd.ids import find_ids, parse_id
from musubi.sdd.markdown import heading_level
from musubi.sdd.project import Project
from musubi.sdd.requirements import Requirement, RequirementsDocument, parse_requirements
from musubi.sdd.scaffold import render_template

__all__ = [
    "ChangeResult",
    "DeltaSpec",
    "Removal",
    "Rename",
    "apply_change",
    "archive_change",
    "init_change",
    "is_applied",
    "load_change",
    "parse_delta",
]

OPS = ("ADDED", "MODIFIED", "REMOVED", "RENAMED")
_OP_HEADING = re.compile(r"^#{2,4}\s+(ADDED|MODIFIED|REMOVED|RENAMED)\b", re.IGNORECASE)
_TARGET = re.compile(r"^\*\*(?:Target|Spec|Target Spec)\*\*\s*:?\s*:?\s*`?([^`\s]+)`?", re.I)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


class Removal(BaseModel):
    id: str
    reason: str = ""
    line: int


class Rename(BaseModel):
    old: str
    new: str
    title: str | None = None
    line: int


class DeltaSpec(BaseModel):
    id: str
    path: str
    title: str = ""
    target: str | None = None
    added: list[Requirement] = []
    modified: list[Requirement] = []
    removed: list[Removal] = []
    renamed: list[Rename] = []
    diagnostics: list[Diagnostic] = []


class ChangeResult(BaseModel):
    change: str
    added: list[str] = []
    modified: list[str] = []
    removed: list[str] = []
    renamed: list[str] = []
    files: list[str] = []
    warnings: list[str] = []


def _without_comments(text: str) -> str:
    """TEXT with its HTML comments blanked, line breaks kept (so line numbers still hold).
    A fence opened outside a comment is code: ``<!--`` in it is literal text and stays."""
    out: list[str] = []
    in_comment = False
    fence: str | None = None
    for line in text.split("\n"):
        opened = None if in_comment else _FENCE.match(line)
        if fence is not None or opened:
            if fence is None and opened:
                fence = opened[1][0]
            elif opened and opened[1][0] == fence:
                fence = None
            out.append(line)
            continue
        kept, rest = [], line
        while rest:
            mark = rest.find("-->" if in_comment else "<!--")
            if not in_comment:
                kept.append(rest if mark < 0 else rest[:mark])
            if mark < 0:
                break
            rest = rest[mark + (3 if in_comment else 4) :]
            in_comment = not in_comment
        out.append("".join(kept) if kept == [line] else "".join(kept).rstrip())
    return "\n".join(out)


def parse_delta(text: str, path: str) -> DeltaSpec:
    text = _without_comments(text)
    lines = text.splitlines()
    delta = DeltaSpec(id=Path(path).stem, path=path)
    m = re.search(r"^#\s+(.+?)\s*$", text, re.MULTILINE)
    delta.title = m[1] if m else delta.id
    sections: list[tuple[str, int, int]] = []  # (op, first line index, end index)
    for i, line in enumerate(lines):
        target = _TARGET.match(line.strip())
        if target and delta.target is None:
            delta.target = target[1]
        op_match = _OP_HEADING.match(line)
        if op_match:
            level = heading_level(line) or 2
            end = next(
                (j for j in range(i + 1, len(lines)) if (heading_level(lines[j]) or 9) <= level),
                len(lines),
            )
            sections.append((op_match[1].upper(), i, end))
    if not sections:
        delta.diagnostics.append(
            Diagnostic(
                file=path,
                line=1,
                code="change.empty",
                message="no ADDED/MODIFIED/REMOVED/RENAMED section; expected e.g. "
                "'## ADDED Requirements'",
            )
        )
    blocks = parse_requirements(text, path).items
    for op, start, end in sections:
        inside = [b for b in blocks if start < b.line - 1 < end]
        if op in ("ADDED", "MODIFIED"):
            (delta.added if op == "ADDED" else delta.modified).extend(inside)
            continue
        for n in range(start + 1, end):
            found = [i for i, _ in find_ids(lines[n]) if i.startswith("REQ-")]
            if op == "REMOVED" and found:
                reason = lines[n].split(found[0], 1)[1].strip(" :-\u2014")
                delta.removed.append(Removal(id=found[0], reason=reason, line=n + 1))
            elif op == "RENAMED" and len(found) >= 2:
                tail = lines[n].split(found[1], 1)[1].strip()
                title = tail.lstrip(":").strip() or None if tail.startswith(":") else None
                delta.renamed.append(Rename(old=found[0], new=found[1], title=title, line=n + 1))
            elif op == "RENAMED" and len(found) == 1 and re.search(r"\bFROM\b", lines[n], re.I):
                nxt = [i for i, _ in find_ids(lines[n + 1])] if n + 1 < end else []
                if nxt:
                    delta.renamed.append(Rename(old=found[0], new=nxt[0], line=n + 1))
    for item in (*delta.added, *delta.modified):
        if not item.statement:
            delta.diagnostics.append(
                Diagnostic(
                    file=path,
                    line=item.line,
                    code="change.no-statement",
                    item=item.id,
                    message=f"{item.id}: block has no EARS statement (a sentence with SHALL)",
                )
            )
    return delta


def load_change(root: Path, change_id: str) -> DeltaSpec:
    path = root / "storage" / "changes" / f"{change_id}.md"
    if not path.exists():
        raise NotFound(f"change {change_id!r} not found ({relpath(path, root)})")
    return parse_delta(read_text(path), relpath(path, root))


def init_change(
    root: Path, change_id: str, title: str | None = None, target: str | None = None
) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", change_id):
        raise InvalidInput("change id must be letters, digits, '.', '_' or '-'", field="id")
    path = root / "storage" / "changes" / f"{change_id}.md"
    if path.exists():
        raise Conflict(f"change {change_id!r} already exists ({relpath(path, root)})")
    text = render_template(
        "change.md",
        id=change_id,
        title=title or change_id,
        date=date.today().isoformat(),
        target=target or "storage/specs/<feature>-requirements.md",
    )
    atomic_write(path, text)
    return path


def _scope(item_id: str) -> str | None:
    sid = parse_id(item_id)
    return sid.scope if sid else None


def _target_doc(
    project: Project, delta: DeltaSpec, item: Requirement
) -> RequirementsDocument | str:
    if delta.target:
        for doc in project.requirement_docs:
            if doc.path == delta.target:
                return doc
        path = project.root / delta.target
        if path.exists():
            return f"target {delta.target} is not a requirements file"
        return RequirementsDocument(path=delta.target, preamble=f"# {delta.title} Requirements\n\n")
    scope = _scope(item.id)
    docs = {d.path: d for d in project.requirement_docs for r in d.items if _scope(r.id) == scope}
    if len(docs) == 1:
        return next(iter(docs.values()))
    if len(project.requirement_docs) == 1:
        return project.requirement_docs[0]
    return (
        f"cannot tell which file receives {item.id}; add "
        "'**Target**: storage/specs/<feature>-requirements.md' to the change"
    )


def apply_change(project: Project, delta: DeltaSpec, *, dry_run: bool = False) -> ChangeResult:
    """Merge ``delta`` into the requirement files. Raises before writing anything if invalid."""
    errors = [str(d) for d in delta.diagnostics if d.severity is Severity.ERROR]
    existing = {r.id: r for r in project.requirements}
    touched: dict[str, RequirementsDocument] = {}
    result = ChangeResult(change=delta.id)

    def doc_for(req_id: str) -> RequirementsDocument:
        doc = next((d for d in project.requirement_docs if d.get(req_id) is not None), None)
        if doc is None:  # the checks below rule this out; never a traceback if they miss
            raise InvalidInput(f"change cannot be applied: {req_id} is not in any spec")
        return touched.setdefault(doc.path, doc)

    errors += _one_operation_per_id(delta)
    gone = {r.old for r in delta.renamed} | {r.id for r in delta.removed}
    for ren in delta.renamed:
        if ren.old not in existing:
            errors.append(f"{delta.path}:{ren.line}: RENAMED {ren.old} does not exist")
        elif ren.new in existing and ren.new not in gone:
            errors.append(f"{delta.path}:{ren.line}: RENAMED target {ren.new} already exists")
    for rem in delta.removed:
        if rem.id not in existing:
            errors.append(
                f"{delta.path}:{rem.line}: REMOVED {rem.id} does not exist (already applied?)"
            )
    for mod in delta.modified:
        if mod.id not in existing:
            errors.append(f"{delta.path}:{mod.line}: MODIFIED {mod.id} does not exist")
    targets: dict[str, RequirementsDocument] = {}
    for add in delta.added:
        if add.id in existing and add.id not in gone:
            where = existing[add.id]
            errors.append(
                f"{delta.path}:{add.line}: ADDED {add.id} already exists at "
                f"{where.file}:{where.line} (already applied?)"
            )
            continue
        target = _target_doc(project, delta, add)
        if isinstance(target, str):
            errors.append(f"{delta.path}:{add.line}: {target}")
        else:
            targets[add.id] = target
    if errors:
        raise InvalidInput(
            "change cannot be applied:\n  " + "\n  ".join(errors), field=delta.id, errors=errors
        )
    for ren in delta.renamed:
        doc = doc_for(ren.old)
        item = doc.get(ren.old)
        assert item is not None
        item.id = ren.new
        if ren.title:
            item.title = ren.title
        result.renamed.append(f"{ren.old} -> {ren.new}")
    for rem in delta.removed:
        doc_for(rem.id).remove(rem.id)
        result.removed.append(rem.id)
    for mod in delta.modified:
        doc_for(mod.id).replace(mod.id, mod.model_copy())
        result.modified.append(mod.id)
    for add in delta.added:
        doc = targets[add.id]
        touched.setdefault(doc.path, doc).add(add.model_copy())
        result.added.append(add.id)
    for doc in touched.values():
        result.files.append(doc.path)
        if not dry_run:
            atomic_write(project.root / doc.path, doc.render())
    stale = {r.old for r in delta.renamed} | {r.id for r in delta.removed}
    for other in project.documents:
        for ref in other.references:
            if ref.id in stale:
                result.warnings.append(f"{ref.file}:{ref.line}: still refers to {ref.id}")
    return result


def _one_operation_per_id(delta: DeltaSpec) -> list[str]:
    """An ID named by two operations of one delta (ADDED twice, REMOVED and MODIFIED, …)."""
    subjects = [
        *(("ADDED", a.id, a.line) for a in delta.added),
        *(("MODIFIED", m.id, m.line) for m in delta.modified),
        *(("REMOVED", r.id, r.line) for r in delta.removed),
        *(("RENAMED", r.old, r.line) for r in delta.renamed),
        *(("RENAMED to", r.new, r.line) for r in delta.renamed),
    ]
    first: dict[str, tuple[str, int]] = {}
    errors = []
    for op, req_id, line in subjects:
        if req_id in first:
            op0, line0 = first[req_id]
            errors.append(
                f"{delta.path}:{line}: {op} {req_id}, but line {line0} already has it "
                f"({op0}); one operation per requirement in a change"
            )
        else:
            first[req_id] = (op, line)
    return errors


def is_applied(project: Project, delta: DeltaSpec) -> bool:
    ids = {r.id: r for r in project.requirements}
    return (
        all(a.id in ids for a in delta.added)
        and all(m.id in ids and ids[m.id].statement == m.statement for m in delta.modified)
        and all(r.id not in ids for r in delta.removed)
        and all(r.new in ids for r in delta.renamed)
    )


def archive_change(project: Project, delta: DeltaSpec, *, force: bool = False) -> Path:
    """Move the change to ``storage/changes/archive/``; it must have been applied first."""
    if not force and not is_applied(project, delta):
        raise InvalidInput(
            f"change {delta.id!r} has not been applied; run "
            f"`musubi change apply {delta.id}` first (or pass --force)"
        )
    src = project.root / delta.path
    dest = project.root / "storage" / "changes" / "archive" / f"{delta.id}.md"
    if dest.exists():
        dest = dest.with_name(f"{date.today().isoformat()}-{delta.id}.md")
    if dest.exists():
        raise Conflict(f"{relpath(dest, project.root)} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)
    return dest
