"""Read -> write is byte-identical where nothing changed; edits touch only their lines."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from musubi.sdd.changes import parse_delta
from musubi.sdd.design import parse_design
from musubi.sdd.project import load_project
from musubi.sdd.requirements import Requirement, parse_requirements
from musubi.sdd.tasks import parse_tasks

PROJECT = Path(__file__).parent / "fixtures" / "auth-project"
PARSERS = {
    "storage/specs/auth-requirements.md": parse_requirements,
    "storage/design/auth-design.md": parse_design,
    "storage/tasks/auth-tasks.md": parse_tasks,
    "storage/changes/add-mfa.md": parse_requirements,
}


@pytest.mark.parametrize("rel", sorted(PARSERS))
@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_unchanged_document_renders_byte_identical(rel: str, eol: str, final_newline: bool) -> None:
    text = (PROJECT / rel).read_text(encoding="utf-8").replace("\n", eol)
    if not final_newline:
        text = text.rstrip("\r\n")
    doc = PARSERS[rel](text, rel)
    assert doc.items, "fixture should hold ID blocks"
    assert doc.render() == text


def test_load_and_save_unchanged_project_rewrites_nothing(project_root: Path) -> None:
    before = {p: p.read_bytes() for p in project_root.rglob("*") if p.is_file()}
    project = load_project(project_root)
    assert not [d for d in project.all_diagnostics() if d.severity == "error"]
    for doc in project.documents:
        assert project.save(doc) is False
    after = {p: p.read_bytes() for p in project_root.rglob("*") if p.is_file()}
    assert after == before


def _changed_lines(old: str, new: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_editing_one_field_changes_only_that_line() -> None:
    rel = "storage/specs/auth-requirements.md"
    text = (PROJECT / rel).read_text(encoding="utf-8")
    doc = parse_requirements(text, rel)
    req = doc.get("REQ-AUTH-001")
    assert req is not None
    req.status = "Verified"
    assert _changed_lines(text, doc.render()) == [
        "-**Status**: ✅ Implemented",
        "+**Status**: Verified",
    ]


def test_editing_a_checked_list_keeps_unchanged_items_verbatim() -> None:
    rel = "storage/specs/auth-requirements.md"
    text = (PROJECT / rel).read_text(encoding="utf-8")
    doc = parse_requirements(text, rel)
    req = doc.get("REQ-AUTH-001")
    assert req is not None
    req.acceptance_criteria.append("Failed logins return 401")
    assert _changed_lines(text, doc.render()) == ["+- [ ] Failed logins return 401"]


def test_task_edits_keep_the_files_own_field_style() -> None:
    rel = "storage/tasks/auth-tasks.md"
    text = (PROJECT / rel).read_text(encoding="utf-8")
    doc = parse_tasks(text, rel)
    plain, bullets = doc.get("TASK-003"), doc.get("TASK-002")
    assert plain is not None and bullets is not None
    plain.depends_on = ["TASK-001"]
    bullets.assignee = "@dana"
    assert _changed_lines(text, doc.render()) == [
        "-- **Assignee**: @ben",
        "+- **Assignee**: @dana",
        "-Dependencies: TASK-001, TASK-002",
        "+Dependencies: TASK-001",
    ]


def test_new_requirement_goes_after_the_last_block_before_trailing_sections() -> None:
    rel = "storage/specs/auth-requirements.md"
    text = (PROJECT / rel).read_text(encoding="utf-8")
    doc = parse_requirements(text, rel)
    doc.add(
        Requirement(
            id="REQ-AUTH-005",
            title="Logout",
            priority="P2",
            statement="WHEN a user logs out, the system SHALL revoke the session token.",
            acceptance_criteria=["The token is rejected afterwards"],
        )
    )
    out = doc.render()
    assert out.index("### REQ-AUTH-005: Logout") > out.index("### REQ-AUTH-004")
    assert out.index("### REQ-AUTH-005: Logout") < out.index("## 3. Traceability Matrix")
    assert out.startswith(text[: text.index("## 3. Traceability Matrix")])
    reparsed = parse_requirements(out, rel).get("REQ-AUTH-005")
    assert reparsed is not None
    assert reparsed.statement.startswith("WHEN a user logs out")
    assert reparsed.acceptance_criteria == ["The token is rejected afterwards"]


def test_parsed_values_from_real_style_files() -> None:
    tasks = parse_tasks((PROJECT / "storage/tasks/auth-tasks.md").read_text(), "t.md")
    deps = {t.id: t.depends_on for t in tasks.items}
    assert deps == {
        "TASK-001": [],
        "TASK-002": ["TASK-001"],
        "TASK-003": ["TASK-001", "TASK-002"],
        "TASK-004": ["TASK-003", "TASK-002"],
        "TASK-005": ["TASK-003"],
    }
    t4 = tasks.get("TASK-004")
    assert t4 is not None and (t4.assignee, t4.estimate) == ("@chen", "1d")
    design = parse_design((PROJECT / "storage/design/auth-design.md").read_text(), "d.md")
    assert [(a.id, a.status) for a in design.items] == [
        ("ADR-001", "Accepted"),
        ("ADR-002", "Proposed"),
    ]
    delta = parse_delta((PROJECT / "storage/changes/add-mfa.md").read_text(), "c.md")
    assert [r.id for r in delta.added] == ["REQ-AUTH-005"]
    assert [r.id for r in delta.modified] == ["REQ-AUTH-003"]
    assert [r.id for r in delta.removed] == ["REQ-AUTH-004"]
    assert [(r.old, r.new, r.title) for r in delta.renamed] == [
        ("REQ-AUTH-002", "REQ-AUTH-010", "Password Storage")
    ]
