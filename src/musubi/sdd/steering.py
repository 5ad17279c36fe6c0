"""Steering: the project memory in ``steering/`` (or ``storage/steering/``, where some MUSUBI
projects keep it; when both exist, both are read and ``steering/`` wins for a file present in
each, with a warning naming the two files).

- ``product.md``, ``structure.md``, ``tech.md`` and locale variants (``product.ja.md``); a
  project written in one language may have only the variants;
- ``project.yml`` in either layout MUSUBI has used: the flat ``musubi init`` one (``name``,
  ``description``, ``locale``, ``version``, ``tech_stack``…; ``musubi-onboard`` writes
  ``project_name`` and ``languages``) or the v2 schema (``schema_version: "2.0"`` with a nested
  ``project:`` mapping). Every key is kept in :attr:`ProjectConfig.data`, known or not;
- ``rules/constitution.md`` (``## Article I: …`` sections) and the optional
  ``rules/constitution-levels.yml`` (critical / advisory / flexible);
- ``memories/*.md``.

Steering files are only read here; nothing in this module writes them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from musubi.sdd.diagnostics import Diagnostic, Severity
from musubi.sdd.files import UndecodableFile, read_text, relpath

__all__ = [
    "DEFAULT_LEVELS",
    "Article",
    "ProjectConfig",
    "Steering",
    "SteeringDoc",
    "load_steering",
    "parse_project_config",
]

CORE_DOCS = ("product", "structure", "tech")
Level = Literal["critical", "advisory", "flexible"]
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")
# MUSUBI's steering/rules/constitution-levels.yml defaults.
DEFAULT_LEVELS: dict[str, Level] = {
    "I": "critical",
    "III": "critical",
    "V": "critical",
    "II": "advisory",
    "IV": "advisory",
    "VI": "advisory",
    "IX": "advisory",
    "VII": "flexible",
    "VIII": "flexible",
}


class ProjectConfig(BaseModel):
    layout: Literal["init", "onboard", "v2"] = "init"
    name: str | None = None
    description: str | None = None
    locale: str | None = None
    version: str | None = None
    languages: list[str] = []
    data: dict[str, Any] = {}


class SteeringDoc(BaseModel):
    name: str
    locale: str | None = None
    path: str
    title: str | None = None


class Article(BaseModel):
    number: str
    title: str
    statement: str | None = None
    line: int
    level: Level = "flexible"


class Steering(BaseModel):
    project: ProjectConfig | None = None
    docs: list[SteeringDoc] = []
    articles: list[Article] = []
    memories: list[SteeringDoc] = []
    diagnostics: list[Diagnostic] = []

    def doc(self, name: str, locale: str | None = None) -> SteeringDoc | None:
        """The doc of that locale; with no locale, the plain one or else any variant."""
        exact = next((d for d in self.docs if d.name == name and d.locale == locale), None)
        if exact is not None or locale is not None:
            return exact
        return next((d for d in self.docs if d.name == name), None)

    @property
    def locales(self) -> list[str]:
        return sorted({d.locale for d in self.docs if d.locale})


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_project_config(data: Any, path: str) -> tuple[ProjectConfig | None, list[Diagnostic]]:
    if not isinstance(data, dict):
        return None, [
            Diagnostic(
                file=path,
                line=1,
                code="steering.project",
                message="expected a YAML mapping (name: …, description: …)",
            )
        ]
    nested = data.get("project")
    if str(data.get("schema_version", "")).startswith("2") or isinstance(nested, dict):
        proj = nested if isinstance(nested, dict) else {}
        stack = data.get("tech_stack") or data.get("stack") or {}
        langs = stack.get("languages", []) if isinstance(stack, dict) else []
        return ProjectConfig(
            layout="v2",
            name=_str(proj.get("name")),
            description=_str(proj.get("description")),
            locale=_str(proj.get("locale") or data.get("locale")),
            version=_str(proj.get("version")),
            languages=[str(x) for x in langs or []],
            data=data,
        ), []
    layout: Literal["init", "onboard"] = "onboard" if "project_name" in data else "init"
    stack = data.get("tech_stack")
    langs = data.get("languages") or (stack.get("languages") if isinstance(stack, dict) else [])
    agents = data.get("agents")
    locale = data.get("locale") or (
        agents.get("default_language") if isinstance(agents, dict) else None
    )
    return ProjectConfig(
        layout=layout,
        name=_str(data.get("name") or data.get("project_name")),
        description=_str(data.get("description")),
        locale=_str(locale),
        version=_str(data.get("version")),
        languages=[str(x) for x in langs or []],
        data=data,
    ), []


_COLONS = ":\uff1a"
_ARTICLE = re.compile(
    rf"^#{{2,3}}\s+Article\s+([IVX]+)\b[^{_COLONS}]*[{_COLONS}.]?\s*(.*?)\s*$", re.IGNORECASE
)


def _articles(text: str, levels: dict[str, Level]) -> list[Article]:
    out: list[Article] = []
    lines = text.splitlines()
    for n, line in enumerate(lines, start=1):
        m = _ARTICLE.match(line)
        if not m:
            continue
        number = m[1].upper()
        statement = None
        for follow in lines[n : n + 8]:
            s = re.match(rf"^\*\*Statement\*\*\s*[{_COLONS}]?\s*(.+)$", follow.strip())
            if s:
                statement = s[1].strip()
                break
            if follow.startswith("#"):
                break
        out.append(
            Article(
                number=number,
                title=m[2],
                statement=statement,
                line=n,
                level=levels.get(number, "flexible"),
            )
        )
    return out


def _levels(path: Path, root: Path, diags: list[Diagnostic]) -> dict[str, Level]:
    levels = dict(DEFAULT_LEVELS)
    if not path.exists():
        return levels
    try:
        data = yaml.safe_load(read_text(path)) or {}
    except (yaml.YAMLError, UndecodableFile) as exc:
        diags.append(
            Diagnostic(
                file=relpath(path, root),
                code="steering.levels",
                message=f"cannot read constitution levels: {exc}",
            )
        )
        return levels
    for level, spec in (data.get("levels") or {}).items():
        if level not in ("critical", "advisory", "flexible") or not isinstance(spec, dict):
            continue
        for art in spec.get("articles") or []:
            name = str(art.get("name", "")) if isinstance(art, dict) else str(art)
            m = re.search(r"Article\s+([IVX]+)\b", name) or re.search(r"CONST-0*(\d+)", name)
            if m:
                num = m[1] if not m[1].isdigit() else ROMAN[int(m[1]) - 1]
                levels[num] = level
    return levels


def _title(text: str) -> str | None:
    m = re.search(r"^#\s+(.+?)\s*$", text, re.MULTILINE)
    return m[1] if m else None


STEERING_DIRS = ("steering", "storage/steering")


def _first(root: Path, rel: str, st: Steering) -> Path | None:
    """``rel`` under the first steering folder that has it; a warning when several do."""
    found = [root / d / rel for d in STEERING_DIRS if (root / d / rel).is_file()]
    if len(found) > 1:
        st.diagnostics.append(
            Diagnostic(
                file=relpath(found[1], root),
                line=1,
                severity=Severity.WARNING,
                code="layout.ambiguous",
                message=f"{relpath(found[1], root)} and {relpath(found[0], root)} both exist; "
                f"using {relpath(found[0], root)} (merge them, or delete one)",
            )
        )
    return found[0] if found else None


def load_steering(root: Path) -> Steering:
    bases = [root / d for d in STEERING_DIRS if (root / d).is_dir()]
    st = Steering()
    if not bases:
        st.diagnostics.append(
            Diagnostic(
                file="steering",
                severity=Severity.WARNING,
                code="steering.missing",
                message="no steering/ folder; run `musubi init`",
            )
        )
        return st
    names = sorted({p.name for base in bases for p in base.glob("*.md")})
    for name in names:
        m = re.fullmatch(r"(?P<name>[\w-]+?)(?:\.(?P<locale>[a-z]{2}(?:-[A-Za-z]{2})?))?\.md", name)
        path = _first(root, name, st)
        if not m or path is None:
            continue
        try:
            text = read_text(path)
        except UndecodableFile as exc:
            st.diagnostics.append(
                Diagnostic(file=relpath(path, root), code="file.encoding", message=str(exc))
            )
            continue
        st.docs.append(
            SteeringDoc(
                name=m["name"], locale=m["locale"], path=relpath(path, root), title=_title(text)
            )
        )
    base = bases[0]
    for name in CORE_DOCS:
        if st.doc(name) is None:
            st.diagnostics.append(
                Diagnostic(
                    file=f"{relpath(base, root)}/{name}.md",
                    severity=Severity.WARNING,
                    code="steering.missing",
                    message=f"{relpath(base, root)}/{name}.md is missing (needs product, "
                    "structure, tech; a locale variant such as "
                    f"{name}.ja.md also counts)",
                )
            )
    project = _first(root, "project.yml", st)
    if project is not None:
        rel = relpath(project, root)
        try:
            data = yaml.safe_load(read_text(project))
            st.project, diags = parse_project_config(data, rel)
            st.diagnostics += diags
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            st.diagnostics.append(
                Diagnostic(
                    file=rel,
                    line=mark.line + 1 if mark else None,
                    code="steering.project",
                    message=f"invalid YAML: {getattr(exc, 'problem', exc)}; expected a mapping",
                )
            )
        except UndecodableFile as exc:
            st.diagnostics.append(Diagnostic(file=rel, code="file.encoding", message=str(exc)))
    levels_file = _first(root, "rules/constitution-levels.yml", st)
    levels = _levels(levels_file or base / "rules/constitution-levels.yml", root, st.diagnostics)
    constitution = _first(root, "rules/constitution.md", st)
    if constitution is not None:
        try:
            st.articles = _articles(read_text(constitution), levels)
        except UndecodableFile as exc:
            st.diagnostics.append(
                Diagnostic(file=relpath(constitution, root), code="file.encoding", message=str(exc))
            )
    for path in sorted(p for b in bases for p in (b / "memories").glob("*.md")):
        try:
            title = _title(read_text(path))
        except UndecodableFile:
            title = None
        st.memories.append(SteeringDoc(name=path.stem, path=relpath(path, root), title=title))
    return st
