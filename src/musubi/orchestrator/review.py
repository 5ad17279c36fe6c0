"""The ``review`` step: a branch reviewed against its requirements, design and constitution.

The model gets the branch's diff from where it left ``HEAD`` (``git diff HEAD...<branch>``)
and its commit messages, the requirements they cite (every requirement of the project when
they cite none), the ADRs citing those, and the project's constitution
(``steering/rules/constitution.md``). A diff over :data:`DIFF_CHARS` is refused before any
call (never cut). The review is a Markdown document with a verdict and findings, each
naming ``path:line`` and the IDs it concerns; it is validated: the verdict is one of
``approve`` or ``request-changes``, every finding has a severity, its file exists on the
branch and the line within it, and each ID it cites exists in the project. It is written
to ``storage/reviews/<feature>-review.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

from musubi.errors import Conflict
from musubi.git import run_git
from musubi.orchestrator.steps import Step, StepInput, _error, repo_file
from musubi.sdd.diagnostics import Diagnostic
from musubi.sdd.ids import IdLocation, find_ids

__all__ = ["DIFF_CHARS", "ReviewStep", "branch_ref"]

DIFF_CHARS = 40_000
_CONSTITUTION = ("steering/rules/constitution.md", "steering/constitution.md")
_VERDICT = re.compile(r"^\**verdict\**\s*:?\**\s*:?\s*`?(?P<v>[a-z-]+)", re.I | re.M)
_FINDING = re.compile(r"^\s*[-*]\s+(?P<body>.+)$", re.M)
_SEVERITY = re.compile(r"\b(error|warning|info)\b", re.I)
_CITE = re.compile(r"`?(?P<path>[\w.\-/]+\.[\w]+|[\w.\-/]*[\w]+):(?P<line>\d+)`?")
_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")


def branch_ref(root: Path, branch: str) -> str | None:
    """``refs/heads/<branch>`` when ``branch`` is a well-formed branch of ``root``."""
    if not _BRANCH.fullmatch(branch) or ".." in branch or branch.endswith((".lock", "/")):
        return None
    ref = f"refs/heads/{branch}"
    return ref if run_git(root, "rev-parse", "--verify", "--quiet", ref) else None


def _lines(root: Path, ref: str, path: str, cache: dict[str, int | None]) -> int | None:
    if path not in cache:
        blob = run_git(root, "cat-file", "-p", f"{ref}:{path}")
        cache[path] = None if blob is None else len(blob.splitlines())
    return cache[path]


class ReviewStep(Step):
    name = "review"
    task = "review"
    folder = "reviews"
    output_tokens = 1200
    system = (
        "You review code changes of a spec-driven project against its requirements, design "
        "and constitution. Answer with the Markdown review only."
    )

    def prepare(self, root: Path, inp: StepInput) -> None:
        from musubi.sdd.project import load_project

        super().prepare(root, inp)
        ref = branch_ref(root, inp.idea)
        if ref is None:
            raise Conflict(f"{inp.idea!r} is no branch of the project's git repository")
        diff = run_git(root, "diff", "--no-color", f"HEAD...{ref}")
        log = run_git(root, "log", "--format=%B", f"HEAD..{ref}")
        text = (diff or b"").decode("utf-8", "replace")
        if not text.strip():
            raise Conflict(f"branch {inp.idea!r} has no change over HEAD; nothing to review")
        if len(text) > DIFF_CHARS:
            raise Conflict(
                f"the diff of {inp.idea!r} is {len(text)} characters, over {DIFF_CHARS}: "
                "review a smaller branch (it is never cut)"
            )
        messages = (log or b"").decode("utf-8", "replace")
        inp.context = text
        inp.task_text = messages.strip()
        project = load_project(root)
        inp.existing_ids = [
            IdLocation(i.id, doc.path, i.line) for doc in project.documents for i in doc.items
        ]
        cited = {i for i, _ in find_ids(text + "\n" + messages)}
        for t in project.tasks:
            if t.id in cited:
                cited |= set(t.requirements)
        reqs = [r for r in project.requirements if r.id in cited] or project.requirements
        inp.requirements = "\n\n".join(f"### {r.id}: {r.title}\n{r.statement}" for r in reqs)
        ids = {r.id for r in reqs}
        adrs = [a for a in project.adrs if set(a.requirements) & ids]
        inp.design = "\n\n".join(f"### {a.id}: {a.title}\n{a.decision or ''}" for a in adrs)
        for rel in _CONSTITUTION:
            path = repo_file(root, rel)
            if path.is_file():
                inp.steering = path.read_text("utf-8")[:6000]
                break

    def values(self, inp: StepInput) -> dict[str, str]:
        return {
            "branch": inp.idea,
            "commits": inp.task_text or "(no message)",
            "diff": inp.context,
            "requirements": inp.requirements or "(the project has no requirements)",
            "design": inp.design or "(no ADR cites them)",
            "constitution": inp.steering or "(the project has no constitution)",
        }

    def validate(self, text: str, inp: StepInput) -> list[Diagnostic]:
        path = self.path(inp.feature)
        out: list[Diagnostic] = []
        verdict = _VERDICT.search(text)
        if verdict is None or verdict["v"].lower() not in ("approve", "request-changes"):
            out.append(
                _error(path, "step.verdict", "no '**Verdict**: approve|request-changes' line")
            )
        known = {i.id for i in inp.existing_ids}
        findings = text.split("## Findings", 1)[1] if "## Findings" in text else ""
        if not findings:
            out.append(_error(path, "step.empty", "no '## Findings' section"))
        ref = branch_ref(inp.root, inp.idea) if inp.root else None
        cache: dict[str, int | None] = {}
        for m in _FINDING.finditer(findings.split("\n## ", 1)[0]):
            body = m["body"].strip()
            short = body[:80]
            if not _SEVERITY.search(body):
                out.append(
                    _error(
                        path, "step.severity", f"{short!r}: no severity (error, warning or info)"
                    )
                )
            cite = _CITE.search(body)
            if cite is None:
                out.append(_error(path, "step.cite", f"{short!r}: no path:line"))
            elif ref is not None and inp.root is not None:
                n = _lines(inp.root, ref, cite["path"], cache)
                if n is None:
                    out.append(
                        _error(path, "step.cite", f"{cite['path']} is no file of the branch")
                    )
                elif not 1 <= int(cite["line"]) <= n:
                    out.append(
                        _error(
                            path,
                            "step.cite",
                            f"{cite['path']}:{cite['line']}: the file has {n} lines",
                        )
                    )
            ids = [i for i, _ in find_ids(body)]
            if not ids:
                out.append(_error(path, "step.no-trace", f"{short!r}: cites no ID"))
            for i in ids:
                if i not in known:
                    out.append(_error(path, "step.unknown-id", f"{i} is no ID of the project", i))
        return out
