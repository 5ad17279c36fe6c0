"""Steps on an existing project: ``change`` (a delta spec), ``reverse`` (requirements
recovered from code, each citing it) and ``steering`` (product, tech and structure notes).

They follow the pattern of :mod:`musubi.orchestrator.steps` (a prompt template in
``prompts/<step>.md``, a lenient parse, a validator from the SDD core, bounded repair); what
they read from the repository is packed into the prompt by :meth:`Step.prepare`, so the
estimate counts the same prompt the model is sent. Import them through
:mod:`musubi.orchestrator.steps` (its :data:`STEPS` registry).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from musubi.errors import InvalidInput
from musubi.orchestrator.steps import (
    _FENCE,
    Checked,
    OutsideRepo,
    RequirementsStep,
    Step,
    StepInput,
    _error,
    repo_file,
)
from musubi.sdd.changes import apply_change, parse_delta
from musubi.sdd.diagnostics import Diagnostic, Severity
from musubi.sdd.ids import parse_id
from musubi.sdd.quality import validate_requirements
from musubi.sdd.requirements import parse_requirements

__all__ = [
    "CODE_CHARS",
    "MAP_CHARS",
    "ChangeStep",
    "ReverseStep",
    "SteeringStep",
    "module_files",
    "repo_map",
]

CODE_CHARS = 48_000  # code (numbered lines) packed into a reverse prompt, ~12k tokens
MAP_CHARS = 6_000  # the repository map in a reverse or steering prompt, ~1.5k tokens
SPEC_CHARS = 24_000  # existing requirements shown to the change step
MANIFEST_CHARS = 3_000  # head of each README / manifest shown to the steering step
_MANIFESTS = (
    "README.md",
    "README.rst",
    "README",
    "pyproject.toml",
    "package.json",
    "go.mod",
    "Cargo.toml",
    "pom.xml",
    "build.gradle",
    "Gemfile",
    "composer.json",
)
_CITE = re.compile(r"(?P<path>[\w.\-/]+):(?P<start>\d+)(?:\s*[-\u2013]\s*(?P<end>\d+))?")
STEERING_FILES = ("product.md", "tech.md", "structure.md")
_MARK = re.compile(
    r"^\s*<!--\s*file:\s*`?(?:steering/)?(?P<name>product|tech|structure)\.md`?\s*-->\s*$",
    re.M | re.I,
)


def _chars4(text: str) -> int:
    return max(1, len(text) // 4)


def module_files(root: Path, module: str) -> list[str]:
    """The indexable files of the repository under ``module`` (a folder or one file)."""
    from musubi.knowledge.files import list_files

    prefix = module.strip("/")
    return [
        f
        for f in list_files(root).files
        if prefix in ("", ".") or f == prefix or f.startswith(prefix + "/")
    ]


def repo_map(
    root: Path, query: str, focus: list[str], chars: int = MAP_CHARS, index_db: Path | None = None
) -> str:
    """The knowledge engine's ranked repository map, personalised towards ``focus``, in about
    ``chars``: from the project's index (``index_db``, as fresh as its last indexing) where
    it has one, else from an in-memory lexical index of the repository (no embeddings)."""
    from musubi.knowledge.indexer import index_repository
    from musubi.knowledge.repomap import build_repo_map
    from musubi.knowledge.store import KnowledgeIndex

    stored = index_db is not None and index_db.is_file()
    index = KnowledgeIndex.open(index_db) if stored and index_db else KnowledgeIndex.memory()
    try:
        if not stored:
            index_repository(root, index)
        return build_repo_map(index, query, focus).render(chars // 4, _chars4)
    finally:
        index.close()


def _numbered(root: Path, files: list[str], budget: int) -> tuple[str, list[str]]:
    """The files' text with line numbers (``  12| code``), as many whole files as fit in
    ``budget`` characters; the names of those left out."""
    parts: list[str] = []
    left_out: list[str] = []
    used = 0
    for rel in files:
        try:
            text = repo_file(root, rel).read_text("utf-8")
        except (OSError, UnicodeDecodeError, OutsideRepo):
            continue
        body = "\n".join(f"{n:>5}| {line}" for n, line in enumerate(text.splitlines(), 1))
        block = f"=== {rel} ===\n{body}\n"
        if used + len(block) > budget:
            left_out.append(rel)
            continue
        parts.append(block)
        used += len(block)
    return "\n".join(parts), left_out


def _check_requirements(path: str, text: str) -> list[Diagnostic]:
    """EARS and quality of the requirement blocks in ``text``; criteria are required."""
    doc = parse_requirements(text, path)
    out = list(doc.diagnostics)
    out += validate_requirements(doc.items)
    for d in out:
        if d.code == "quality.no-criteria":
            d.severity = Severity.ERROR
    return out


class ChangeStep(Step):
    """``change "<request>"``: a delta spec for the project's existing requirements, written
    where ``musubi change init`` puts one (``storage/changes/<id>.md``), ready for
    ``musubi change apply``."""

    name = "change"
    task = "requirements"
    folder = "changes"
    output_tokens = 1200

    def path(self, feature: str) -> str:
        return f"storage/changes/{feature}.md"

    def refuse(self, root: Path, feature: str) -> str | None:
        rel = self.path(feature)
        if repo_file(root, rel).exists():
            return f"{rel} already exists; a change is never overwritten (choose another feature)"
        return None

    def prepare(self, root: Path, inp: StepInput) -> None:
        from musubi.sdd.project import load_project

        super().prepare(root, inp)
        project = load_project(root)
        blocks: list[str] = []
        for doc in project.requirement_docs:
            blocks.append(f"File {doc.path}:")
            for r in doc.items:
                blocks.append(f"### {r.id}: {r.title}\n{r.statement}")
        text = "\n\n".join(blocks)
        inp.context = text[:SPEC_CHARS] or "(the project has no requirements yet)"

    def values(self, inp: StepInput) -> dict[str, str]:
        return {
            "idea": inp.idea,
            "steering": inp.steering or "(none)",
            "existing": inp.context or "(the project has no requirements yet)",
            "existing_ids": ", ".join(sorted({i.id for i in inp.existing_ids})) or "(none)",
        }

    def validate(self, text: str, inp: StepInput) -> list[Diagnostic]:
        from musubi.sdd.project import load_project

        path = self.path(inp.feature)
        delta = parse_delta(text, path)
        out = list(delta.diagnostics)
        out += _check_requirements(path, text)
        if not (delta.added or delta.modified or delta.removed or delta.renamed):
            out.append(
                _error(path, "step.empty", "no ADDED, MODIFIED, REMOVED or RENAMED requirement")
            )
        for req in delta.added:
            sid = parse_id(req.id)
            if sid is None or sid.kind != "REQ":
                out.append(_error(path, "step.id", f"{req.id} is not a requirement ID", req.id))
        other = {i.id: i for i in inp.existing_ids}
        reqs: set[str] = set()
        if inp.root is not None:
            project = load_project(inp.root)
            reqs = {r.id for r in project.requirements}
            try:  # the SDD core's own checks: ADDED new, MODIFIED/REMOVED existing, target
                apply_change(project, delta.model_copy(update={"diagnostics": []}), dry_run=True)
            except InvalidInput as exc:
                errors = exc.detail.get("errors")
                for message in errors if isinstance(errors, list) else [exc.message]:
                    out.append(_error(path, "change.apply", str(message)))
        for req in delta.added:  # an ID used by another kind of document is taken too
            if req.id in other and req.id not in reqs:
                where = other[req.id]
                out.append(
                    _error(
                        path,
                        "step.collision",
                        f"ADDED {req.id} is already used at {where.file}:{where.line}",
                        req.id,
                    )
                )
        return out


class ReverseStep(RequirementsStep):
    """``reverse <path>``: requirements recovered from a module's code. Every requirement
    cites the code it came from (``**Source**: path:line[-line]``), and every citation must
    name a file of the repository and lines it has."""

    name = "reverse"
    task = "requirements"
    folder = "specs"
    output_tokens = 2000

    def path(self, feature: str) -> str:
        return f"storage/specs/{feature}-requirements.md"

    def prepare(self, root: Path, inp: StepInput) -> None:
        super().prepare(root, inp)
        files = module_files(root, inp.idea)
        code, left_out = _numbered(root, files, CODE_CHARS)
        rmap = repo_map(root, inp.idea, files, index_db=inp.index_db)
        parts = [f"## Repository map\n{rmap}" if rmap else "", f"## Code of {inp.idea}\n{code}"]
        if left_out:
            parts.append("Not shown (over the budget): " + ", ".join(left_out))
        inp.context = "\n\n".join(p for p in parts if p)

    def values(self, inp: StepInput) -> dict[str, str]:
        return {
            **super().values(inp),
            "module": inp.idea,
            "code": inp.context or "(no code)",
        }

    def validate(self, text: str, inp: StepInput) -> list[Diagnostic]:
        out = super().validate(text, inp)
        path = self.path(inp.feature)
        for req in parse_requirements(text, path).items:
            source = next((v for k, v in req.extra.items() if k.lower() == "source"), "")
            cites = list(_CITE.finditer(source))
            if not cites:
                out.append(
                    _error(
                        path,
                        "reverse.no-source",
                        f"{req.id} cites no code; add '**Source**: path/to/file:line'",
                        req.id,
                    )
                )
            module = inp.idea.strip("/")
            for m in cites:
                problem = self._cite_problem(inp.root, m)
                if problem:
                    out.append(_error(path, "reverse.bad-source", f"{req.id}: {problem}", req.id))
                elif module and not (m["path"] == module or m["path"].startswith(module + "/")):
                    out.append(
                        Diagnostic(
                            file=path,
                            code="reverse.outside-module",
                            severity=Severity.WARNING,
                            message=f"{req.id} cites {m['path']}, outside {module}",
                            item=req.id,
                        )
                    )
        return out

    @staticmethod
    def _cite_problem(root: Path | None, m: re.Match[str]) -> str | None:
        rel = m["path"]
        start, end = int(m["start"]), int(m["end"] or m["start"])
        if root is None:
            return None
        if PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
            return f"{rel} is not a path inside the repository"
        try:
            file = repo_file(root, rel)
        except OutsideRepo:
            return f"{rel} leads outside the repository"
        if not file.is_file():
            return f"{rel} does not exist in the repository"
        try:
            lines = len(file.read_text("utf-8").splitlines())
        except (OSError, UnicodeDecodeError):
            return f"{rel} is not a readable text file"
        if start < 1 or end < start or end > lines:
            return f"{rel}:{m[0].split(':', 1)[1]} is outside the file ({lines} lines)"
        return None


class SteeringStep(Step):
    """``steering``: the project's product, tech and structure notes, from its repository
    (the knowledge engine's repo map, the file list, READMEs and manifests). Writes
    ``steering/product.md``, ``tech.md`` and ``structure.md``; a steering file the user
    already has is a conflict, never overwritten."""

    name = "steering"
    task = "design"
    folder = "steering"
    output_tokens = 2500

    def path(self, feature: str) -> str:
        return "steering/product.md"

    def paths(self, feature: str) -> list[str]:
        return [f"steering/{n}" for n in STEERING_FILES]

    def refuse(self, root: Path, feature: str) -> str | None:
        have = [p for p in self.paths(feature) if repo_file(root, p).exists()]
        if have:
            return (
                f"{', '.join(have)} already exist(s); steering files the user has are never "
                "overwritten (move them away to regenerate)"
            )
        return None

    def prepare(self, root: Path, inp: StepInput) -> None:
        from musubi.knowledge.files import list_files

        super().prepare(root, inp)
        files = list_files(root).files
        parts = []
        rmap = repo_map(root, "", [], index_db=inp.index_db)
        if rmap:
            parts.append(f"## Repository map\n{rmap}")
        listing = "\n".join(files[:400]) + (
            f"\n… and {len(files) - 400} more" if len(files) > 400 else ""
        )
        parts.append(f"## Files\n{listing}")
        for name in _MANIFESTS:
            if name in files:
                try:
                    text = repo_file(root, name).read_text("utf-8")[:MANIFEST_CHARS]
                except (OSError, UnicodeDecodeError, OutsideRepo):
                    continue
                parts.append(f"## {name}\n{text}")
        inp.context = "\n\n".join(parts)

    def values(self, inp: StepInput) -> dict[str, str]:
        return {"repository": inp.context or "(an empty repository)"}

    def check(self, raw: str, inp: StepInput) -> Checked:
        text = raw.strip()
        m = _FENCE.match(text)
        if m:
            text = m["body"].strip()
        first = _MARK.search(text)
        if first:
            text = text[first.start() :]
        text = text.rstrip() + "\n"
        return Checked(text, self.validate(text, inp))

    @staticmethod
    def split(text: str) -> dict[str, str]:
        marks = list(_MARK.finditer(text))
        out: dict[str, str] = {}
        for n, m in enumerate(marks):
            end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
            body = text[m.end() : end].strip()
            fence = _FENCE.match(body)
            out[m["name"].lower() + ".md"] = (fence["body"].strip() if fence else body) + "\n"
        return out

    def outputs(self, text: str, feature: str) -> dict[str, str]:
        return {f"steering/{name}": body for name, body in self.split(text).items()}

    def validate(self, text: str, inp: StepInput) -> list[Diagnostic]:
        parts = self.split(text)
        out: list[Diagnostic] = []
        for name in STEERING_FILES:
            path = f"steering/{name}"
            body = parts.get(name, "").strip()
            if not body:
                out.append(
                    _error(
                        path,
                        "steering.missing",
                        f"{name} is missing or empty; start it with the line "
                        f"'<!-- file: {name} -->'",
                    )
                )
                continue
            if not re.match(r"^# \S", body):
                out.append(_error(path, "steering.title", f"{name} must start with a '# ' title"))
            sections = list(re.finditer(r"^## +(?P<title>.+?)\s*$", body, re.M))
            if not sections:
                out.append(_error(path, "steering.no-sections", f"{name} has no '## ' sections"))
            for n, sec in enumerate(sections):
                end = sections[n + 1].start() if n + 1 < len(sections) else len(body)
                if not body[sec.end() : end].strip():
                    out.append(
                        _error(
                            path,
                            "steering.empty-section",
                            f"{name}: section '{sec['title']}' is empty",
                            sec["title"],
                        )
                    )
        return out
