"""``musubi init``: steering/, storage/ and instruction files for AI coding agents.

Templates are package data under ``musubi/sdd/templates/``; ``@@name@@`` placeholders are
filled in. Existing files are never overwritten unless ``force`` is set.

On a project that already uses MUSUBI (:func:`detect_layout` finds steering documents or spec
files), ``init`` keeps the project's layout: it writes no steering or storage files, whatever
names and folders they have (``storage/steering/``, ``product.ja.md``, ``REQ-001-….md``), only
the agent instruction files that are missing. ``force`` scaffolds the full template layout
regardless.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path

from musubi.sdd.files import atomic_write

__all__ = [
    "AGENTS",
    "COMMANDS",
    "AgentLayout",
    "InitResult",
    "Layout",
    "detect_layout",
    "render_template",
    "scaffold",
]

COMMANDS = (
    "sdd-steering",
    "sdd-requirements",
    "sdd-design",
    "sdd-tasks",
    "sdd-implement",
    "sdd-validate",
    "sdd-change",
)
STORAGE_DIRS = ("specs", "design", "tasks", "changes", "traceability")


@dataclass(frozen=True)
class AgentLayout:
    label: str
    instructions: str
    commands_dir: str | None
    command_file: str = "{name}.md"
    instructions_header: str = ""
    command_format: str = "md"  # md | toml | prompt


AGENTS: dict[str, AgentLayout] = {
    "claude": AgentLayout("Claude Code", "CLAUDE.md", ".claude/commands"),
    "copilot": AgentLayout(
        "GitHub Copilot",
        ".github/copilot-instructions.md",
        ".github/prompts",
        "{name}.prompt.md",
        command_format="prompt",
    ),
    "cursor": AgentLayout(
        "Cursor",
        ".cursor/rules/musubi-sdd.mdc",
        ".cursor/commands",
        instructions_header="---\ndescription: MUSUBI spec-driven development rules\n"
        "alwaysApply: true\n---\n\n",
    ),
    "gemini": AgentLayout(
        "Gemini CLI", "GEMINI.md", ".gemini/commands", "{name}.toml", command_format="toml"
    ),
    "codex": AgentLayout("Codex", "AGENTS.md", ".codex/prompts"),
    "qwen": AgentLayout(
        "Qwen Code", "QWEN.md", ".qwen/commands", "{name}.toml", command_format="toml"
    ),
    "windsurf": AgentLayout(
        "Windsurf",
        ".windsurf/rules/musubi-sdd.md",
        ".windsurf/workflows",
        instructions_header="---\ntrigger: always_on\n---\n\n",
    ),
}


def render_template(template: str, /, **values: str) -> str:
    """Read template ``name`` (a path under templates/) and fill ``@@key@@`` placeholders."""
    text = (
        resources.files("musubi.sdd")
        .joinpath("templates", *template.split("/"))
        .read_text(encoding="utf-8")
    )

    def fill(m: re.Match[str]) -> str:
        return values.get(m[1], m[0])

    return re.sub(r"@@([a-z_]+)@@", fill, text)


def _command(agent: AgentLayout, name: str) -> str:
    args = "{{args}}" if agent.command_format == "toml" else "$ARGUMENTS"
    body = render_template(f"agents/commands/{name}.md", args=args)
    summary = re.split(r"\.\s", body.replace("\n", " "), maxsplit=1)[0].strip()
    if agent.command_format == "toml":
        escaped = body.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        return f'description = "{summary.replace(chr(34), chr(39))}"\nprompt = """\n{escaped}"""\n'
    if agent.command_format == "prompt":
        return f"---\nmode: agent\ndescription: {summary}\n---\n\n{body}"
    return f"---\ndescription: {summary}\n---\n\n{body}"


@dataclass
class InitResult:
    created: list[str]
    skipped: list[str]
    overwritten: list[str]
    layout: Layout | None = None
    not_created: list[str] = field(default_factory=list)  # template files an existing layout
    # does without (its steering is storage/steering/product.ja.md, say)


@dataclass(frozen=True)
class Layout:
    """Where an existing MUSUBI project keeps things."""

    steering_dirs: tuple[str, ...]  # "steering", "storage/steering"
    spec_files: tuple[str, ...]  # relative paths of its requirement/design/task files
    locale: str | None  # "ja" when its steering exists only as product.ja.md etc.

    def describe(self) -> str:
        where = ", ".join(self.steering_dirs) or "no steering"
        folders = sorted({f.rsplit("/", 1)[0] for f in self.spec_files})
        lang = f"; documents in {self.locale!r} only" if self.locale else ""
        return f"steering in {where}; specs in {', '.join(folders) or 'none yet'}{lang}"


def detect_layout(root: Path) -> Layout | None:
    """The layout of an existing MUSUBI project under ``root``; ``None`` for a new one."""
    from musubi.sdd.project import SPEC_KINDS, spec_files
    from musubi.sdd.steering import CORE_DOCS, STEERING_DIRS

    dirs: list[str] = []
    locales: set[str | None] = set()
    for rel in STEERING_DIRS:
        docs = [p for name in CORE_DOCS for p in (root / rel).glob(f"{name}*.md")]
        if docs or (root / rel / "project.yml").is_file():
            dirs.append(rel)
        for doc in docs:
            parts = doc.name.split(".")
            locales.add(parts[1] if len(parts) == 3 else None)
    specs = sorted(
        {p.relative_to(root).as_posix() for kind in SPEC_KINDS for p in spec_files(root, kind)}
    )
    if not dirs and not specs:
        return None
    only = [loc for loc in locales if loc]
    locale = only[0] if len(only) == 1 and None not in locales else None
    return Layout(tuple(dirs), tuple(specs), locale)


def scaffold(
    root: Path,
    *,
    name: str | None = None,
    description: str = "",
    locale: str = "en",
    agents: tuple[str, ...] = ("claude",),
    force: bool = False,
    today: date | None = None,
) -> InitResult:
    unknown = [a for a in agents if a not in AGENTS]
    if unknown:
        raise ValueError(f"unknown agent(s): {', '.join(unknown)}; choose from {', '.join(AGENTS)}")
    layout = None if force else detect_layout(root)
    name = name or root.resolve().name
    values = {
        "name": name,
        "description": description or f"{name} project",
        "locale": locale,
        "date": (today or date.today()).isoformat(),
    }
    files: dict[str, str] = {}
    for tpl in (
        "product.md",
        "structure.md",
        "tech.md",
        "project.yml",
        "rules/constitution.md",
        "rules/constitution-levels.yml",
        "memories/README.md",
    ):
        filled = {k: json.dumps(v) for k, v in values.items()} if tpl.endswith(".yml") else values
        files[f"steering/{tpl}"] = render_template(f"steering/{tpl}", **filled)
    for folder in STORAGE_DIRS:
        files[f"storage/{folder}/.gitkeep"] = ""
    instructions = render_template("agents/instructions.md", **values)
    for key in agents:
        agent = AGENTS[key]
        files[agent.instructions] = agent.instructions_header + instructions
        if agent.commands_dir:
            for cmd in COMMANDS:
                rel = f"{agent.commands_dir}/{agent.command_file.format(name=cmd)}"
                files[rel] = _command(agent, cmd)
    result = InitResult([], [], [], layout)
    for rel, text in files.items():
        path = root / rel
        if path.exists() and not force:
            result.skipped.append(rel)
            continue
        if layout is not None and rel.startswith(("steering/", "storage/")):
            result.not_created.append(rel)
            continue
        (result.overwritten if path.exists() else result.created).append(rel)
        atomic_write(path, text)
    return result
