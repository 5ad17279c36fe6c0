"""The traceability matrix: requirement -> design, tasks, code, tests, commits.

Stored as ``storage/traceability/matrix.yml`` in MUSUBI's layout::

    version: "1.0"
    lastUpdated: "2025-12-31T12:00:00+00:00"
    requirements:
      REQ-AUTH-001:
        title: User Login
        design:  [{path: storage/design/auth-design.md, line: 28}]
        code:    [{path: src/auth/login.py, line: 4, type: comment}]
        tests:   [{path: tests/test_login.py, line: 4, description: "def test_req_…"}]
        commits: [{sha: abc1234, message: "feat: login [REQ-AUTH-001]", date: 2025-12-31}]
        status: fully-traced        # fully-traced | partial | untraced
    summary: {totalRequirements: 4, fullyTraced: 3, partiallyTraced: 1, untraced: 0,
              coveragePercent: 75.0}

``tasks`` is added per requirement (MUSUBI readers ignore keys they do not know).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from musubi.sdd.files import atomic_write, read_text
from musubi.sdd.ids import KIND_GROUPS
from musubi.sdd.project import Project
from musubi.sdd.trace.scan import Link, scan_commits, scan_sources, spec_links

__all__ = [
    "DIMENSIONS",
    "MATRIX_FILE",
    "Gap",
    "Matrix",
    "TraceEntry",
    "build_matrix",
    "collect_links",
    "coverage",
    "find_gaps",
    "impact",
    "matrix_to_yaml",
    "traced_percent",
    "write_matrix",
]

MATRIX_FILE = "storage/traceability/matrix.yml"
DIMENSIONS = ("design", "tasks", "code", "tests", "commits")
_KIND_TO_DIM = {
    "design": "design",
    "task": "tasks",
    "code": "code",
    "test": "tests",
    "commit": "commits",
}
Status = Literal["fully-traced", "partial", "untraced"]


class TraceEntry(BaseModel):
    id: str
    title: str
    file: str
    line: int
    design: list[Link] = []
    tasks: list[Link] = []
    code: list[Link] = []
    tests: list[Link] = []
    commits: list[Link] = []

    @property
    def status(self) -> Status:
        if self.design and self.code and self.tests:
            return "fully-traced"
        if self.design or self.code or self.tests or self.tasks or self.commits:
            return "partial"
        return "untraced"


class Gap(BaseModel):
    id: str
    kind: Literal["missing", "unknown-id"]
    missing: list[str] = []
    file: str | None = None
    line: int | None = None
    message: str


class Matrix(BaseModel):
    entries: dict[str, TraceEntry]
    orphans: list[Link] = []  # links naming a requirement that does not exist


def collect_links(project: Project, *, commits: bool = True) -> list[Link]:
    links = spec_links(project) + scan_sources(project.root)
    if commits:
        links += scan_commits(project.root)
    return links


def build_matrix(project: Project, links: list[Link]) -> Matrix:
    entries = {
        r.id: TraceEntry(id=r.id, title=r.title, file=r.file, line=r.line)
        for r in project.requirements
    }
    orphans: list[Link] = []
    # "REQ-001" naming a whole requirements document (its **ID**), or "FR-001" naming a group
    # of requirements, is not a missing requirement.
    documents = {d.doc_id for d in project.requirement_docs if d.doc_id}
    documents |= {g for d in project.requirement_docs for g in d.groups}
    for link in links:
        entry = entries.get(link.id)
        if entry is None:
            if link.id.split("-")[0] in KIND_GROUPS["requirements"] and link.id not in documents:
                orphans.append(link)
            continue
        bucket: list[Link] = getattr(entry, _KIND_TO_DIM[link.kind])
        if not any(
            x.path == link.path and x.line == link.line and x.sha == link.sha for x in bucket
        ):
            bucket.append(link)
    return Matrix(entries=entries, orphans=orphans)


def find_gaps(matrix: Matrix, require: tuple[str, ...] = ("design", "code", "tests")) -> list[Gap]:
    gaps: list[Gap] = []
    for entry in matrix.entries.values():
        missing = [dim for dim in require if not getattr(entry, dim)]
        if missing:
            gaps.append(
                Gap(
                    id=entry.id,
                    kind="missing",
                    missing=missing,
                    file=entry.file,
                    line=entry.line,
                    message=f"{entry.id} has no {', '.join(missing)} link",
                )
            )
    for link in matrix.orphans:
        gaps.append(
            Gap(
                id=link.id,
                kind="unknown-id",
                file=link.path,
                line=link.line,
                message=f"{link.where} refers to {link.id}, which is not a requirement",
            )
        )
    return gaps


def traced_percent(matrix: Matrix, require: tuple[str, ...]) -> float:
    """The share of requirements with every link in ``require`` (what ``trace check`` asks)."""
    total = len(matrix.entries)
    done = sum(1 for e in matrix.entries.values() if all(getattr(e, d) for d in require))
    return round(100.0 * done / total, 1) if total else 100.0


def coverage(matrix: Matrix) -> dict[str, Any]:
    total = len(matrix.entries)

    def pct(n: int) -> float:
        return round(100.0 * n / total, 1) if total else 100.0

    out: dict[str, Any] = {"requirements": total}
    for dim in DIMENSIONS:
        out[dim] = pct(sum(1 for e in matrix.entries.values() if getattr(e, dim)))
    statuses = [e.status for e in matrix.entries.values()]
    out["fullyTraced"] = statuses.count("fully-traced")
    out["partiallyTraced"] = statuses.count("partial")
    out["untraced"] = statuses.count("untraced")
    out["coveragePercent"] = pct(out["fullyTraced"])
    return out


def impact(project: Project, matrix: Matrix, req_id: str) -> dict[str, Any]:
    """What a change to ``req_id`` touches: design, tasks (and their dependents), code, tests,
    commits, and the other requirements implemented in the same files."""
    entry = matrix.entries.get(req_id)
    if entry is None:
        from musubi.errors import NotFound

        raise NotFound(f"requirement {req_id} not found")
    direct = {t.id for t in project.tasks if req_id in t.requirements}
    dependents: set[str] = set()
    frontier = set(direct)
    while frontier:
        frontier = {
            t.id
            for t in project.tasks
            if set(t.depends_on) & frontier and t.id not in direct | dependents
        }
        dependents |= frontier
    files = {link.path for link in entry.code + entry.tests}
    related = sorted(
        e.id
        for e in matrix.entries.values()
        if e.id != req_id and files & {link.path for link in e.code + e.tests}
    )
    adrs = [a.id for a in project.adrs if req_id in a.requirements]
    return {
        "requirement": req_id,
        "title": entry.title,
        "file": f"{entry.file}:{entry.line}",
        "design": [link.where for link in entry.design],
        "adrs": adrs,
        "tasks": sorted(direct),
        "dependentTasks": sorted(dependents),
        "code": sorted({link.where for link in entry.code}),
        "tests": sorted({link.where for link in entry.tests}),
        "commits": [f"{link.where} {link.text}" for link in entry.commits],
        "relatedRequirements": related,
    }


def _file_link(link: Link, extra: str) -> dict[str, Any]:
    row: dict[str, Any] = {"path": link.path, "line": link.line}
    if extra == "type":
        row["type"] = link.via
    elif extra and link.text:
        row[extra] = link.text
    return row


def matrix_to_yaml(matrix: Matrix, *, now: datetime | None = None) -> str:
    reqs: dict[str, Any] = {}
    for e in matrix.entries.values():
        reqs[e.id] = {
            "title": e.title,
            "design": [_file_link(x, "") for x in e.design],
            "tasks": [{"id": x.via, "path": x.path, "line": x.line} for x in e.tasks],
            "code": [_file_link(x, "type") for x in e.code],
            "tests": [_file_link(x, "description") for x in e.tests],
            "commits": [
                {"sha": x.sha[:12] if x.sha else None, "message": x.text, "date": x.date}
                for x in e.commits
            ],
            "status": e.status,
        }
    cov = coverage(matrix)
    data = {
        "version": "1.0",
        "lastUpdated": (now or datetime.now(UTC)).replace(microsecond=0).isoformat(),
        "requirements": reqs,
        "summary": {
            k: cov[k] for k in ("fullyTraced", "partiallyTraced", "untraced", "coveragePercent")
        }
        | {"totalRequirements": len(reqs)},
    }
    header = "# Traceability matrix, written by `musubi trace matrix --write`.\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def write_matrix(root: Path, matrix: Matrix, *, now: datetime | None = None) -> bool:
    """Write the matrix if anything but ``lastUpdated`` changed; True when written."""
    path = root / MATRIX_FILE
    text = matrix_to_yaml(matrix, now=now)
    if path.exists():
        old = yaml.safe_load(read_text(path)) or {}
        new = yaml.safe_load(text)
        if isinstance(old, dict):
            old.pop("lastUpdated", None)
            new.pop("lastUpdated", None)
            if old == new:
                return False
    atomic_write(path, text)
    return True
