"""Review gates and constitution checks, run by ``musubi validate`` and ``workflow advance``.

Each check belongs to a gate (the stage it guards) and, where it enforces one, to a
constitutional article. Its level comes from the article (``steering/rules/
constitution-levels.yml``, MUSUBI's defaults otherwise):

- ``critical``  a failure blocks (``musubi validate`` exits 1, ``workflow advance`` refuses);
- ``advisory``  a failure is a warning;
- ``flexible``  a failure is reported for information only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from musubi.sdd.design import ADR_STATUSES, c4_levels
from musubi.sdd.diagnostics import Severity
from musubi.sdd.graph import build_graph
from musubi.sdd.project import Project
from musubi.sdd.quality import validate_requirements
from musubi.sdd.steering import DEFAULT_LEVELS, Level
from musubi.sdd.trace.matrix import build_matrix, collect_links, find_gaps
from musubi.sdd.trace.scan import Link

__all__ = ["GATES", "GateCheck", "GateReport", "run_gates"]

GATES = ("documents", "steering", "requirements", "design", "tasks", "implement")
_STAGE_GATES = {
    "steering": ("documents", "steering"),
    "requirements": ("documents", "requirements"),
    "design": ("documents", "design"),
    "tasks": ("documents", "tasks"),
    "implement": ("documents", "implement"),
    "validate": ("documents", "requirements", "design", "tasks", "implement"),
    "review": GATES,
}


class GateCheck(BaseModel):
    gate: str
    name: str
    article: str | None = None
    level: Level = "advisory"
    passed: bool
    message: str
    findings: list[str] = []

    @property
    def outcome(self) -> Literal["pass", "block", "warn", "info"]:
        if self.passed:
            return "pass"
        outcomes: dict[str, Literal["block", "warn", "info"]] = {
            "critical": "block",
            "advisory": "warn",
            "flexible": "info",
        }
        return outcomes[self.level]


class GateReport(BaseModel):
    checks: list[GateCheck] = []

    @property
    def blocking(self) -> list[GateCheck]:
        return [c for c in self.checks if c.outcome == "block"]


def _levels(project: Project) -> dict[str, Level]:
    levels = dict(DEFAULT_LEVELS)
    levels.update({a.number: a.level for a in project.steering.articles})
    return levels


def run_gates(
    project: Project,
    *,
    stage: str | None = None,
    links_for: Callable[[Project], list[Link]] | None = None,
) -> GateReport:
    """Run the gates guarding ``stage`` (all gates when ``None``)."""
    gates = _STAGE_GATES.get(stage or "", GATES) if stage else GATES
    levels = _levels(project)
    report = GateReport()

    def add(
        gate: str,
        name: str,
        passed: bool,
        message: str,
        findings: list[str],
        article: str | None = None,
        level: Level | None = None,
    ) -> None:
        lvl: Level = level or (levels.get(article, "advisory") if article else "advisory")
        report.checks.append(
            GateCheck(
                gate=gate,
                name=name,
                article=article,
                level=lvl,
                passed=passed,
                message=message,
                findings=findings,
            )
        )

    if "documents" in gates:
        errors = [str(d) for d in project.all_diagnostics() if d.severity is Severity.ERROR]
        add(
            "documents",
            "documents parse",
            not errors,
            "every spec document parses and every ID is unique"
            if not errors
            else f"{len(errors)} document error(s)",
            errors,
            level="critical",
        )
    if "steering" in gates:
        missing = [
            f"steering/{n}.md"
            for n in ("product", "structure", "tech")
            if project.steering.doc(n) is None
        ]
        add(
            "steering",
            "project memory",
            not missing,
            "product, structure and tech steering files exist"
            if not missing
            else "steering files missing",
            missing,
            article="VI",
        )
    reqs = project.requirements
    if "requirements" in gates:
        diags = validate_requirements(reqs)
        ears = [
            str(d) for d in diags if d.code.startswith("ears.") and d.severity is Severity.ERROR
        ]
        add(
            "requirements",
            "EARS format",
            bool(reqs) and not ears,
            "no requirements found"
            if not reqs
            else ("every requirement is valid EARS" if not ears else f"{len(ears)} EARS error(s)"),
            ears,
            article="IV",
        )
        quality = [
            str(d)
            for d in diags
            if d.code.startswith("quality.") and d.severity is not Severity.INFO
        ]
        add(
            "requirements",
            "testable wording and acceptance criteria",
            not quality,
            "no vague terms; every requirement has acceptance criteria"
            if not quality
            else f"{len(quality)} quality finding(s)",
            quality,
            article="IV",
        )
    if "design" in gates:
        mentioned = {ref.id for d in project.design_docs for ref in d.references}
        undesigned = [f"{r.id} ({r.file}:{r.line})" for r in reqs if r.id not in mentioned]
        add(
            "design",
            "requirements covered by design",
            not undesigned,
            "every requirement is named in a design document"
            if not undesigned
            else f"{len(undesigned)} requirement(s) not named in any design",
            undesigned,
            article="V",
        )
        no_c4 = [
            f"{d.path}: missing C4 {', '.join(m)}"
            for d in project.design_docs
            if (m := [lv for lv in ("context", "container", "component") if lv not in c4_levels(d)])
        ]
        add(
            "design",
            "C4 sections",
            bool(project.design_docs) and not no_c4,
            "no design document"
            if not project.design_docs
            else (
                "context, container and component sections present"
                if not no_c4
                else "C4 sections missing"
            ),
            no_c4,
        )
        bad_adr = [
            f"{a.id} ({a.file}:{a.line}): status {a.status!r}"
            for a in project.adrs
            if not a.status or a.status.split()[0].lower().strip("*") not in ADR_STATUSES
        ]
        add(
            "design",
            "ADR status",
            not bad_adr,
            "every ADR has a status (proposed, accepted, rejected, deprecated, superseded)"
            if not bad_adr
            else f"{len(bad_adr)} ADR(s) without a valid status",
            bad_adr,
        )
    if "tasks" in gates:
        graph = build_graph(project.tasks)
        problems = [str(d) for d in graph.diagnostics if d.severity is Severity.ERROR]
        add(
            "tasks",
            "task dependencies",
            not problems,
            "no cycles or unknown dependencies"
            if not problems
            else f"{len(problems)} dependency problem(s)",
            problems,
            level="critical",
        )
        tasked = {r for t in project.tasks for r in t.requirements}
        untasked = [r.id for r in reqs if r.id not in tasked]
        orphan = [f"{t.id} ({t.file}:{t.line})" for t in project.tasks if not t.requirements]
        add(
            "tasks",
            "tasks map to requirements",
            not untasked and not orphan,
            "every requirement has a task and every task names a requirement"
            if not untasked and not orphan
            else "task mapping incomplete",
            [f"{r}: no task" for r in untasked] + [f"{o}: no requirement" for o in orphan],
            article="V",
        )
    if "implement" in gates:
        matrix = build_matrix(project, (links_for or collect_links)(project))
        untested = [
            f"{g.id}: no test" for g in find_gaps(matrix, ("tests",)) if g.kind == "missing"
        ]
        add(
            "implement",
            "tests reference requirements",
            not untested,
            "every requirement has a test that names it"
            if not untested
            else f"{len(untested)} requirement(s) without a test",
            untested,
            article="III",
        )
        gaps = [g.message for g in find_gaps(matrix)]
        add(
            "implement",
            "traceability",
            not gaps,
            "requirement -> design -> code -> test links are complete"
            if not gaps
            else f"{len(gaps)} traceability gap(s)",
            gaps,
            article="V",
        )
    return report
