"""Steps: one SDD stage done by a model, with a prompt, an output contract and a validator.

A :class:`Step` turns a :class:`StepInput` into chat messages (its prompt template is a file
in this package, overridable per project as ``steering/prompts/<step>.md``), and checks a
model's answer with the SDD core: it is parsed leniently (a code fence or chatter around the
document is dropped) and validated by the same functions ``musubi validate`` uses. An answer
that fails is sent back with the validator's messages for a bounded number of repairs
(:mod:`musubi.orchestrator.engine`).

Steps are a pluggable kind (:data:`STEP_KINDS`, entry points ``musubi.steps``): the built-ins
are declared in this package's ``pyproject.toml`` exactly as a plugin declares its own, and
:data:`STEPS` holds one instance of each installed step, built on first use. A run does some
of :data:`PLAN` in order, or any other step alone (:func:`single_steps`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import ClassVar

from musubi.errors import Conflict, PluginError
from musubi.kinds import Kind
from musubi.sdd.design import parse_design
from musubi.sdd.diagnostics import Diagnostic, Severity
from musubi.sdd.graph import build_graph
from musubi.sdd.ids import IdLocation, find_collisions, find_ids, parse_id
from musubi.sdd.quality import validate_requirements
from musubi.sdd.requirements import parse_requirements
from musubi.sdd.tasks import parse_tasks

__all__ = [
    "PLAN",
    "STEPS",
    "STEP_KINDS",
    "Checked",
    "DesignStep",
    "OutsideRepo",
    "RequirementsStep",
    "Step",
    "StepInput",
    "TasksStep",
    "extract_document",
    "repo_file",
    "single_steps",
    "step_of",
]

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(?P<body>.*?)\n```\s*$", re.S)


@dataclass
class StepInput:
    """What a step works from: the idea, the feature's slug and the earlier stages' text."""

    idea: str
    feature: str
    steering: str = ""
    requirements: str = ""  # the requirements document (design and tasks)
    design: str = ""  # the design document (tasks)
    existing_ids: list[IdLocation] = field(default_factory=list)  # defined elsewhere
    root: Path | None = None  # the repository (steps that read code or the project)
    context: str = ""  # what :meth:`Step.prepare` packed from the repository
    index_db: Path | None = None  # the project's knowledge index, where it has one
    # implement and review
    task_id: str = ""  # the task an implement step does
    task_text: str = ""  # its block in the task document
    model: str = "gpt-4o"  # the model whose tokenizer packs the code context
    context_tokens: int = 6000  # the code context's budget
    workdir: Path | None = None  # the task's git worktree, where the patch is checked
    tests: str = "off"  # sandbox.MODES: whether and how the project's tests run
    test_command: str = ""
    test_output: str = ""


@dataclass
class Checked:
    text: str  # the document as it will be written
    diagnostics: list[Diagnostic]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors


def extract_document(raw: str) -> str:
    """The Markdown document in a model's answer: inside a lone code fence, from the first
    heading on, with a final newline."""
    text = raw.strip()
    m = _FENCE.match(text)
    if m:
        text = m["body"].strip()
    first = re.search(r"^#", text, re.M)
    if first:
        text = text[first.start() :]
    return text.rstrip() + "\n"


class OutsideRepo(Conflict):
    """A file of the project resolves outside its repository (a symbolic link)."""


def repo_file(root: Path, rel: str) -> Path:
    """``root / rel``, refused when it resolves outside ``root`` (a link in the repository
    must not make a run read or write the server's own files)."""
    path = root / rel
    if not path.resolve().is_relative_to(root.resolve()):
        raise OutsideRepo(f"{rel} leads outside the repository (a symbolic link); refused")
    return path


def _error(path: str, code: str, message: str, item: str | None = None) -> Diagnostic:
    return Diagnostic(file=path, code=code, message=message, item=item)


def _fill(template: str, values: dict[str, str]) -> str:
    """Replace ``{name}`` for the known names only: braces elsewhere stay as written."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m[1], m[0]), template)


class Step(ABC):
    name: ClassVar[str]
    task: ClassVar[str]  # the gateway routing task: model ``musubi/<task>``
    folder: ClassVar[str]  # where the output goes under storage/
    output_tokens: ClassVar[int]  # expected answer length, for the cost estimate
    system: ClassVar[str] = (
        "You write MUSUBI spec-driven development documents. Answer with the Markdown "
        "document only."
    )

    def path(self, feature: str) -> str:
        return f"storage/{self.folder}/{feature}-{self.name}.md"

    def paths(self, feature: str) -> list[str]:
        """Every file the step writes (one, but for ``steering``)."""
        return [self.path(feature)]

    def outputs(self, text: str, feature: str) -> dict[str, str]:
        """The files to write from a valid document."""
        return {self.path(feature): text}

    def prepare(self, root: Path, inp: StepInput) -> None:
        """Read what the step needs from the repository into ``inp`` (before its prompt)."""
        inp.root = root

    def refuse(self, root: Path, feature: str) -> str | None:
        """Why the step must not start here (a file it never overwrites), or None."""
        return None

    def template(self, root: Path | None) -> str:
        if root is not None:
            custom = repo_file(root, f"steering/prompts/{self.name}.md")
            if custom.is_file():
                return custom.read_text("utf-8")
        package = resources.files("musubi.orchestrator").joinpath("prompts", f"{self.name}.md")
        return package.read_text("utf-8")

    @abstractmethod
    def values(self, inp: StepInput) -> dict[str, str]:
        """The template's placeholders."""

    def messages(self, root: Path | None, inp: StepInput) -> list[dict[str, str]]:
        prompt = _fill(self.template(root), {"feature": inp.feature, **self.values(inp)})
        return [{"role": "system", "content": self.system}, {"role": "user", "content": prompt}]

    def repair(self, raw: str, errors: list[Diagnostic]) -> list[dict[str, str]]:
        """Messages that send an invalid answer back with what is wrong with it."""
        problems = "\n".join(f"- {d.message}" for d in errors)
        return [
            {"role": "assistant", "content": raw},
            {
                "role": "user",
                "content": "The document does not pass validation:\n"
                f"{problems}\n\nWrite the whole corrected document again, Markdown only.",
            },
        ]

    def check(self, raw: str, inp: StepInput) -> Checked:
        text = extract_document(raw)
        return Checked(text, self.validate(text, inp))

    @abstractmethod
    def validate(self, text: str, inp: StepInput) -> list[Diagnostic]:
        """Diagnostics of the document; any error fails the attempt."""


def _req_ids(text: str) -> list[str]:
    return [r.id for r in parse_requirements(text, "requirements.md").items]


class RequirementsStep(Step):
    name = "requirements"
    task = "requirements"
    folder = "specs"
    output_tokens = 1500

    def values(self, inp: StepInput) -> dict[str, str]:
        scope = re.sub(r"[^A-Z0-9]", "", inp.feature.upper())[:8] or "FEAT"
        return {
            "idea": inp.idea,
            "steering": inp.steering or "(none)",
            "id_example": f"REQ-{scope}-001",
            "existing_ids": ", ".join(sorted({i.id for i in inp.existing_ids})) or "(none)",
        }

    def validate(self, text: str, inp: StepInput) -> list[Diagnostic]:
        path = self.path(inp.feature)
        doc = parse_requirements(text, path)
        out = list(doc.diagnostics)
        if not doc.items:
            out.append(
                _error(path, "step.empty", "no requirement blocks; expected '### REQ-…: Title'")
            )
        for req in doc.items:
            sid = parse_id(req.id)
            if sid is None or sid.kind != "REQ":
                out.append(_error(path, "step.id", f"{req.id} is not a requirement ID", req.id))
        out += validate_requirements(doc.items)
        for d in out:  # the step's contract: every requirement has acceptance criteria
            if d.code == "quality.no-criteria":
                d.severity = Severity.ERROR
        mine = [IdLocation(r.id, path, r.line) for r in doc.items]
        out += [d for d in find_collisions([*inp.existing_ids, *mine]) if d.file == path]
        return out


class DesignStep(Step):
    name = "design"
    task = "design"
    folder = "design"
    output_tokens = 2500

    def values(self, inp: StepInput) -> dict[str, str]:
        return {
            "steering": inp.steering or "(none)",
            "requirements": inp.requirements,
            "requirement_ids": ", ".join(_req_ids(inp.requirements)),
        }

    def validate(self, text: str, inp: StepInput) -> list[Diagnostic]:
        path = self.path(inp.feature)
        doc = parse_design(text, path)
        out = list(doc.diagnostics)
        wanted = _req_ids(inp.requirements)
        cited = {i for i, _ in find_ids(text) if i.startswith("REQ-")}
        for req_id in wanted:
            if req_id not in cited:
                out.append(
                    _error(path, "step.uncovered", f"{req_id} is not cited by the design", req_id)
                )
        for req_id in sorted(cited - set(wanted)):
            out.append(
                _error(path, "step.unknown-id", f"{req_id} is not one of the requirements", req_id)
            )
        if not doc.items and not doc.headings:
            out.append(_error(path, "step.empty", "no sections and no ADR blocks"))
        return out


class TasksStep(Step):
    name = "tasks"
    task = "design"  # no "tasks" routing task by default: planning models serve it
    folder = "tasks"
    output_tokens = 2000

    def values(self, inp: StepInput) -> dict[str, str]:
        return {
            "requirements": inp.requirements,
            "design": inp.design,
            "requirement_ids": ", ".join(_req_ids(inp.requirements)),
            "task_example": "TASK-001",
        }

    def validate(self, text: str, inp: StepInput) -> list[Diagnostic]:
        path = self.path(inp.feature)
        doc = parse_tasks(text, path)
        out = list(doc.diagnostics)
        wanted = set(_req_ids(inp.requirements))
        if not doc.items:
            out.append(_error(path, "step.empty", "no task blocks; expected '### TASK-NNN: …'"))
        covered: set[str] = set()
        for t in doc.items:
            if not t.requirements:
                out.append(_error(path, "step.no-trace", f"{t.id} cites no requirement ID", t.id))
            for req_id in t.requirements:
                if req_id not in wanted:
                    out.append(
                        _error(path, "step.unknown-id", f"{t.id} cites unknown {req_id}", t.id)
                    )
            covered |= set(t.requirements)
        for req_id in sorted(wanted - covered):
            out.append(
                _error(path, "step.uncovered", f"{req_id} is implemented by no task", req_id)
            )
        out += build_graph(doc.items).diagnostics  # cycles and unknown dependencies
        return out


STEP_KINDS: Kind[Step] = Kind("steps", Step)
"""An entry point of ``musubi.steps`` names a :class:`Step` subclass (built with no argument)
whose ``name`` is the entry point's name. Its prompt template is found by :meth:`Step.template`
(override it for a template in another package)."""


class _Installed(Mapping[str, Step]):
    """One instance of every installed step, by name, built on first use."""

    @cached_property
    def _steps(self) -> dict[str, Step]:
        steps: dict[str, Step] = {}
        for name in STEP_KINDS.names():
            step = STEP_KINDS.build(name)
            if step.name != name:
                raise PluginError(
                    f"musubi.steps entry point {name!r} builds a step called {step.name!r}"
                )
            steps[name] = step
        return steps

    def __getitem__(self, name: str) -> Step:
        return self._steps[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)


STEPS: Mapping[str, Step] = _Installed()
PLAN = ("requirements", "design", "tasks")


def single_steps() -> tuple[str, ...]:
    """The steps a run does alone: every installed step but those of :data:`PLAN`."""
    return tuple(name for name in STEPS if name not in PLAN)


def step_of(row_name: str) -> tuple[Step, str]:
    """The step of a run's step row and its argument: ``implement:TASK-001`` is the
    implement step for TASK-001 (a run implements several tasks, one row each)."""
    name, _, arg = row_name.partition(":")
    return STEPS[name], arg
