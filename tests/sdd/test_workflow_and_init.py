"""Workflow state machine, review gates, `musubi init`, steering formats and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from musubi.errors import Conflict, InvalidInput
from musubi.sdd import workflow as wf
from musubi.sdd.gates import run_gates
from musubi.sdd.project import load_project
from musubi.sdd.scaffold import AGENTS
from musubi.sdd.steering import load_steering, parse_project_config

Cli = Callable[..., tuple[int, str, str]]


def clock() -> datetime:
    return datetime(2025, 12, 1, 9, 0, tzinfo=UTC)


def test_medium_mode_walks_its_stages_with_history(tmp_path: Path) -> None:
    wf.start(tmp_path, "auth", "medium", clock=clock)
    seen = []
    while wf.next_stages(wf.load_state(tmp_path) or {}):
        seen.append(wf.advance(tmp_path, clock=clock)["currentStage"])
    state = wf.load_state(tmp_path)
    assert state is not None
    assert seen == ["design", "tasks", "implement", "validate", "validate"]
    assert state["status"] == "completed"
    actions = [h["action"] for h in state["history"]]
    assert actions == ["workflow-started"] + ["stage-transition"] * 4 + ["workflow-completed"]
    on_disk = yaml.safe_load((tmp_path / "storage/workflow-state.yml").read_text())
    assert on_disk["currentStage"] == "validate" and on_disk["mode"] == "medium"


def test_small_mode_skips_design_and_tasks(tmp_path: Path) -> None:
    wf.start(tmp_path, "fix-typo", "small", clock=clock)
    assert wf.advance(tmp_path, clock=clock)["currentStage"] == "implement"
    with pytest.raises(InvalidInput, match="cannot go from implement to design in small mode"):
        wf.advance(tmp_path, "design", clock=clock)
    assert wf.status(tmp_path)["skipped"] == ["steering", "design", "tasks", "review"]


def test_blockers_stop_advance_until_resolved_and_loops_are_recorded(tmp_path: Path) -> None:
    wf.start(tmp_path, "auth", "small", clock=clock)
    wf.advance(tmp_path, clock=clock)
    wf.advance(tmp_path, clock=clock)  # at validate
    blocker = wf.block(tmp_path, "security review pending", clock=clock)
    with pytest.raises(Conflict, match="#1 security review pending"):
        wf.advance(tmp_path, clock=clock)
    wf.unblock(tmp_path, blocker["id"], clock=clock)
    state = wf.advance(tmp_path, "implement", notes="flaky test", clock=clock)
    assert state["history"][-1]["action"] == "feedback-loop"
    assert state["stages"]["implement"]["attempts"] == 2


def test_workflow_keeps_unknown_keys(tmp_path: Path) -> None:
    wf.start(tmp_path, "auth", clock=clock)
    path = tmp_path / "storage/workflow-state.yml"
    data = yaml.safe_load(path.read_text())
    data["config"] = {"coverageThreshold": 70}
    path.write_text(yaml.safe_dump(data))
    wf.advance(tmp_path, clock=clock)
    assert yaml.safe_load(path.read_text())["config"] == {"coverageThreshold": 70}


def test_advance_is_refused_by_a_critical_gate(project_root: Path, musubi: Cli) -> None:
    root = str(project_root)
    assert musubi("workflow", "start", "auth", "-C", root)[0] == 0
    assert musubi("workflow", "advance", "-C", root)[0] == 0  # requirements gate passes
    code, _, err = musubi("workflow", "advance", "-C", root)  # design gate: REQ-AUTH-004
    assert code == 1
    assert "requirements covered by design" in err and "REQ-AUTH-004" in err
    assert wf.status(project_root)["currentStage"] == "design"
    assert musubi("workflow", "advance", "--force", "-C", root)[0] == 0
    assert wf.status(project_root)["currentStage"] == "tasks"


def test_advance_reports_open_blockers_with_a_failing_gate(project_root: Path, musubi: Cli) -> None:
    """Before: only the gate was reported; the blocker surfaced after the gate was fixed."""
    root = str(project_root)
    assert musubi("workflow", "start", "auth", "-C", root)[0] == 0
    assert musubi("workflow", "advance", "-C", root)[0] == 0  # at design
    assert musubi("workflow", "block", "security review pending", "-C", root)[0] == 0
    code, _, err = musubi("workflow", "advance", "-C", root)  # design gate fails too
    assert code == 1
    assert "1 critical gate check(s) fail" in err and "REQ-AUTH-004" in err
    assert "1 open blocker(s): #1 security review pending" in err
    assert wf.status(project_root)["currentStage"] == "design"


def test_gate_levels_follow_the_constitution(project_root: Path) -> None:
    report = run_gates(load_project(project_root))
    outcome = {c.name: (c.article, c.level, c.outcome) for c in report.checks}
    assert outcome["traceability"] == ("V", "critical", "block")
    assert outcome["EARS format"] == ("IV", "advisory", "pass")
    levels = project_root / "steering/rules/constitution-levels.yml"
    levels.write_text(
        "levels:\n  flexible:\n    articles:\n"
        "      - {id: CONST-005, name: 'Article V - Traceability Mandate'}\n"
        "  critical:\n    articles:\n      - {name: 'Article III'}\n"
    )
    report = run_gates(load_project(project_root))
    outcome = {c.name: (c.article, c.level, c.outcome) for c in report.checks}
    assert outcome["traceability"] == ("V", "flexible", "info")
    assert [c.name for c in report.blocking] == ["tests reference requirements"]


def test_init_scaffolds_every_agent_and_never_overwrites(tmp_path: Path, musubi: Cli) -> None:
    code, out, _ = musubi(
        "init", "--agents", "all", "--name", "shop", "--json", "-C", str(tmp_path)
    )
    assert code == 0
    for agent in AGENTS.values():
        assert (tmp_path / agent.instructions).is_file(), agent.instructions
        # every agent is told about the server's MCP tools
        assert "/mcp/" in (tmp_path / agent.instructions).read_text(), agent.instructions
    for rel in (
        "CLAUDE.md",
        ".claude/commands/sdd-requirements.md",
        "AGENTS.md",
        "GEMINI.md",
        ".gemini/commands/sdd-tasks.toml",
        ".github/copilot-instructions.md",
        ".github/prompts/sdd-design.prompt.md",
        ".cursor/rules/musubi-sdd.mdc",
        "QWEN.md",
        ".windsurf/rules/musubi-sdd.md",
        "storage/specs/.gitkeep",
    ):
        assert (tmp_path / rel).is_file(), rel
    steering = load_steering(tmp_path)
    assert steering.diagnostics == []
    assert steering.project is not None and steering.project.name == "shop"
    assert [a.number for a in steering.articles][:3] == ["I", "II", "III"]
    product = tmp_path / "steering/product.md"
    product.write_text("# Mine\n")
    code, out, _ = musubi("init", "--json", "-C", str(tmp_path))
    assert code == 0 and product.read_text() == "# Mine\n"
    assert {"file": "steering/product.md", "action": "kept (exists)"} in json.loads(out)


def test_project_yml_init_onboard_and_v2_layouts() -> None:
    init, _ = parse_project_config(
        {
            "name": "a",
            "locale": "ja",
            "tech_stack": {"languages": ["python"]},
            "reviewGate": {"x": 1},
        },
        "p.yml",
    )
    assert init is not None and (init.layout, init.name, init.languages) == (
        "init",
        "a",
        ["python"],
    )
    assert init.data["reviewGate"] == {"x": 1}
    onboard, _ = parse_project_config(
        {"project_name": "b", "languages": ["js"], "agents": {"default_language": "ja"}}, "p.yml"
    )
    assert onboard is not None and (onboard.layout, onboard.name, onboard.locale) == (
        "onboard",
        "b",
        "ja",
    )
    v2, _ = parse_project_config(
        {
            "schema_version": "2.0",
            "project": {"name": "c", "version": "1.0"},
            "tech_stack": {"languages": ["go"]},
            "custom": [1],
        },
        "p.yml",
    )
    assert v2 is not None and (v2.layout, v2.name, v2.version, v2.languages) == (
        "v2",
        "c",
        "1.0",
        ["go"],
    )
    assert v2.data["custom"] == [1]
    bad, diags = parse_project_config(["not", "a", "mapping"], "p.yml")
    assert bad is None and "expected a YAML mapping" in diags[0].message


def test_requirements_add_list_validate(project_root: Path, musubi: Cli) -> None:
    root = str(project_root)
    code, out, _ = musubi(
        "requirements",
        "add",
        "auth",
        "--title",
        "Logout",
        "--statement",
        "WHEN a user logs out, the system SHALL revoke the session token.",
        "--criterion",
        "The token is rejected",
        "-C",
        root,
    )
    assert (code, out.strip()) == (0, "REQ-AUTH-005")
    code, out, _ = musubi("requirements", "list", "--json", "-C", root)
    assert '"id": "REQ-AUTH-005"' in out and '"pattern": "event-driven"' in out
    code, out, _ = musubi(
        "requirements",
        "add",
        "auth",
        "--title",
        "Speed",
        "--statement",
        "The system SHALL be fast.",
        "--distributed",
        "-C",
        root,
    )
    assert code == 0 and out.startswith("REQ-AUTH-")
    code, out, _ = musubi("requirements", "validate", "-C", root)
    assert code == 0 and "vague term 'fast'" in out
    assert musubi("requirements", "validate", "--strict", "-C", root)[0] == 1
    code, _, err = musubi(
        "requirements",
        "add",
        "auth",
        "--title",
        "Bad",
        "--statement",
        "The system must log.",
        "--strict",
        "-C",
        root,
    )
    assert code == 1 and "no SHALL" in err


def test_musubi_help_lists_sdd_commands_without_importing_them() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from musubi.cli.main import cli\n"
        "out = CliRunner().invoke(cli, ['--help']).output\n"
        "assert 'trace' in out and 'requirements' in out, out\n"
        "loaded = [m for m in sys.modules if m.startswith(('musubi.sdd', 'musubi.cli.sdd_'))]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
