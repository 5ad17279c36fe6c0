"""Task graph (cycles, parallel groups, Mermaid) and delta specs (apply, archive)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from musubi.errors import InvalidInput
from musubi.sdd.changes import apply_change, archive_change, load_change
from musubi.sdd.graph import build_graph
from musubi.sdd.project import load_project
from musubi.sdd.tasks import Task

Cli = Callable[..., tuple[int, str, str]]


def _t(tid: str, *deps: str) -> Task:
    return Task(id=tid, title=tid.lower(), depends_on=list(deps), file="t.md", line=1)


def test_parallel_groups_are_topological_levels() -> None:
    g = build_graph(
        [
            _t("TASK-001"),
            _t("TASK-002", "TASK-001"),
            _t("TASK-003", "TASK-001"),
            _t("TASK-004", "TASK-002", "TASK-003"),
        ]
    )
    assert g.groups == [["TASK-001"], ["TASK-002", "TASK-003"], ["TASK-004"]]
    assert g.cycles == [] and g.diagnostics == []
    mermaid = g.mermaid()
    assert mermaid.startswith("graph TD\n")
    assert "  TASK_002 --> TASK_004" in mermaid
    assert 'subgraph group2["Parallel group 2"]' in mermaid


def test_cycle_is_found_and_reported_with_its_path() -> None:
    g = build_graph(
        [
            _t("TASK-001", "TASK-003"),
            _t("TASK-002", "TASK-001"),
            _t("TASK-003", "TASK-002"),
            _t("TASK-004", "TASK-003"),
            _t("TASK-005"),
        ]
    )
    assert g.cycles == [["TASK-001", "TASK-003", "TASK-002", "TASK-001"]]
    assert g.groups == [["TASK-005"]]
    assert g.blocked == ["TASK-001", "TASK-002", "TASK-003", "TASK-004"]
    assert [d.code for d in g.diagnostics] == ["tasks.cycle", "tasks.blocked"]
    assert "class TASK_001 cycle" in g.mermaid()


def test_unknown_dependency_is_an_error() -> None:
    g = build_graph([_t("TASK-001", "TASK-404")])
    assert [d.message for d in g.diagnostics] == [
        "TASK-001 depends on TASK-404, which does not exist"
    ]


def test_tasks_graph_cli_exits_nonzero_on_a_cycle(project_root: Path, musubi: Cli) -> None:
    code, out, _ = musubi("tasks", "graph", "--mermaid", "-C", str(project_root))
    assert code == 0 and "TASK_003 --> TASK_005" in out
    tasks = project_root / "storage/tasks/auth-tasks.md"
    tasks.write_text(
        tasks.read_text().replace("**Dependencies**: None", "**Dependencies**: TASK-005")
    )
    code, out, _ = musubi("tasks", "graph", "--json", "-C", str(project_root))
    assert code == 1
    assert json.loads(out)["cycles"] == [
        ["TASK-001", "TASK-005", "TASK-003", "TASK-001"],
        ["TASK-001", "TASK-005", "TASK-003", "TASK-002", "TASK-001"],
    ]


def test_change_apply_merges_all_four_operations(project_root: Path, musubi: Cli) -> None:
    spec = project_root / "storage/specs/auth-requirements.md"
    before = spec.read_text()
    code, _, err = musubi("change", "apply", "add-mfa", "--json", "-C", str(project_root))
    assert code == 0, err
    after = spec.read_text()
    project = load_project(project_root)
    ids = [r.id for r in project.requirements]
    assert ids == ["REQ-AUTH-001", "REQ-AUTH-010", "REQ-AUTH-003", "REQ-AUTH-005"]
    renamed = project.requirement("REQ-AUTH-010")
    assert renamed is not None and renamed.title == "Password Storage"
    modified = project.requirement("REQ-AUTH-003")
    assert modified is not None and "or TOTP code" in modified.statement
    assert modified.priority == "P1 (High)"
    # Untouched requirement and trailing sections keep their exact text.
    block = before[before.index("### REQ-AUTH-001") : before.index("### REQ-AUTH-002")]
    assert block in after
    assert after.endswith(before[before.index("## 3. Traceability Matrix") :])
    assert "still refers to REQ-AUTH-004" in err  # the tasks file mentions it


def test_change_apply_is_all_or_nothing(project_root: Path) -> None:
    change = project_root / "storage/changes/add-mfa.md"
    change.write_text(
        change.read_text().replace(
            "- REQ-AUTH-004: Session Refresh", "- REQ-AUTH-404: No such requirement"
        )
    )
    spec = project_root / "storage/specs/auth-requirements.md"
    before = spec.read_bytes()
    project = load_project(project_root)
    with pytest.raises(InvalidInput, match="REMOVED REQ-AUTH-404 does not exist"):
        apply_change(project, load_change(project_root, "add-mfa"))
    assert spec.read_bytes() == before


def test_change_cannot_be_applied_twice_or_archived_before_apply(
    project_root: Path, musubi: Cli
) -> None:
    code, _, err = musubi("change", "archive", "add-mfa", "-C", str(project_root))
    assert code == 1 and "has not been applied" in err
    assert musubi("change", "apply", "add-mfa", "-C", str(project_root))[0] == 0
    spec = project_root / "storage/specs/auth-requirements.md"
    once = spec.read_bytes()
    code, _, err = musubi("change", "apply", "add-mfa", "-C", str(project_root))
    assert code == 1 and "already applied?" in err
    assert spec.read_bytes() == once
    project = load_project(project_root)
    dest = archive_change(project, load_change(project_root, "add-mfa"))
    assert dest == project_root / "storage/changes/archive/add-mfa.md"
    assert not (project_root / "storage/changes/add-mfa.md").exists()


def test_change_init_writes_a_parsable_template(project_root: Path, musubi: Cli) -> None:
    code, out, _ = musubi(
        "change", "init", "drop-hints", "--title", "Drop password hints", "-C", str(project_root)
    )
    assert code == 0 and "storage/changes/drop-hints.md" in out
    delta = load_change(project_root, "drop-hints")
    assert delta.title == "Drop password hints" and not delta.diagnostics
    assert musubi("change", "init", "drop-hints", "-C", str(project_root))[0] == 1


LOCKOUT = """### REQ-AUTH-020: Account Lockout

**Pattern**: Event-Driven
**Priority**: P1

**EARS Statement**:
```
WHEN a user fails to log in 5 times in 10 minutes, the system SHALL lock the account.
```
"""


def _new_change(root: Path, musubi: Cli, change_id: str, edit: Callable[[str], str]) -> None:
    """``change init`` (the template with its commented-out examples), then a user's edit."""
    target = "storage/specs/auth-requirements.md"
    assert musubi("change", "init", change_id, "--target", target, "-C", str(root))[0] == 0
    path = root / f"storage/changes/{change_id}.md"
    path.write_text(edit(path.read_text()))


def test_change_apply_ignores_the_templates_commented_examples(
    project_root: Path, musubi: Cli
) -> None:
    """Before: the spec gained the template's placeholder REQ, a stray ``-->``, a duplicate ID."""
    spec = project_root / "storage/specs/auth-requirements.md"
    before = spec.read_text()
    _new_change(
        project_root,
        musubi,
        "lockout",
        lambda t: t.replace("## ADDED Requirements\n", "## ADDED Requirements\n\n" + LOCKOUT),
    )
    code, out, err = musubi("change", "apply", "lockout", "--json", "-C", str(project_root))
    assert code == 0, err
    result = json.loads(out)
    assert (result["added"], result["removed"], result["renamed"]) == (["REQ-AUTH-020"], [], [])
    after = spec.read_text()
    assert "-->" not in after and "<trigger>" not in after and "REQ-AUTH-010" not in after
    ids = [r.id for r in load_project(project_root).requirements]
    assert ids.count("REQ-AUTH-020") == 1 and len(ids) == len(set(ids))
    assert after.startswith(before.rstrip()[: before.index("## 3. Traceability Matrix")])


def test_change_with_only_a_removal_dry_runs_cleanly(project_root: Path, musubi: Cli) -> None:
    """Before: ``--dry-run`` ended in a raw StopIteration traceback."""
    _new_change(
        project_root,
        musubi,
        "drop-refresh",
        lambda t: t.replace("<!-- - REQ-AUTH-004: reason -->", "- REQ-AUTH-004: obsolete"),
    )
    code, out, err = musubi(
        "change", "apply", "drop-refresh", "--dry-run", "--json", "-C", str(project_root)
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["removed"] == ["REQ-AUTH-004"] and result["added"] == []
    assert result["renamed"] == [] and result["dry_run"] is True


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace("## ADDED Requirements\n", "## ADDED Requirements\n" + LOCKOUT * 2),
            "ADDED REQ-AUTH-020, but line",
        ),
        (
            lambda t: t.replace(
                "<!-- - REQ-AUTH-004: reason -->", "- REQ-AUTH-004: old\n- REQ-AUTH-004: again"
            ),
            "REMOVED REQ-AUTH-004, but line",
        ),
    ],
)
def test_one_operation_per_requirement_in_a_change(
    project_root: Path, musubi: Cli, edit: Callable[[str], str], message: str
) -> None:
    spec = project_root / "storage/specs/auth-requirements.md"
    before = spec.read_bytes()
    _new_change(project_root, musubi, "twice", edit)
    for args in (("--dry-run",), ()):
        code, _, err = musubi("change", "apply", "twice", *args, "-C", str(project_root))
        assert code == 1 and message in err and "Traceback" not in err
    assert spec.read_bytes() == before
