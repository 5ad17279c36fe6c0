"""Bad input: file, line and what was expected; the rest of the project still loads."""

from __future__ import annotations

from pathlib import Path

from musubi.sdd.ids import (
    IdLocation,
    find_collisions,
    new_distributed_id,
    next_sequential_id,
    parse_id,
)
from musubi.sdd.project import load_project


def test_malformed_heading_is_reported_and_other_blocks_load(project_root: Path) -> None:
    spec = project_root / "storage/specs/auth-requirements.md"
    text = spec.read_text()
    spec.write_text(text.replace("### REQ-AUTH-002: Password Hashing", "### REQ-AUTH-02: Password"))
    project = load_project(project_root)
    diags = [d for d in project.all_diagnostics() if d.code == "parse.bad-id"]
    assert len(diags) == 1
    d = diags[0]
    assert (d.file, d.line) == ("storage/specs/auth-requirements.md", 36)
    assert "'REQ-AUTH-02' is not a valid ID; expected e.g. REQ-AUTH-001" in d.message
    assert [r.id for r in project.requirements] == ["REQ-AUTH-001", "REQ-AUTH-003", "REQ-AUTH-004"]
    assert len(project.tasks) == 5


def test_undecodable_file_and_bad_yaml_do_not_stop_loading(project_root: Path) -> None:
    (project_root / "storage/specs/legacy-requirements.md").write_bytes(b"# Old\n\xff\xfe bad\n")
    (project_root / "steering/project.yml").write_text("name: shop\ndescription: [unclosed\n")
    project = load_project(project_root)
    by_code = {d.code: d for d in project.all_diagnostics()}
    assert by_code["file.encoding"].file == "storage/specs/legacy-requirements.md"
    assert "expected UTF-8" in by_code["file.encoding"].message
    assert by_code["steering.project"].file == "steering/project.yml"
    assert by_code["steering.project"].line == 3
    assert len(project.requirements) == 4


def test_duplicate_ids_across_files_name_both_places(project_root: Path) -> None:
    other = project_root / "storage/specs/billing-requirements.md"
    other.write_text("# Billing\n\n### REQ-AUTH-002: Clash\n\nThe system SHALL bill.\n")
    project = load_project(project_root)
    clash = [d for d in project.diagnostics if d.code == "id.collision"]
    assert [str(d) for d in clash] == [
        "storage/specs/billing-requirements.md:3: error: REQ-AUTH-002 is defined twice: here "
        "and at storage/specs/auth-requirements.md:36 (renumber one, or use a distributed ID: "
        "--distributed)"
    ]


def test_id_grammar() -> None:
    for text in (
        "REQ-AUTH-001",
        "REQ-P4-001",
        "ADR-001",
        "ADR-6.2-002",
        "TASK-INT-001",
        "REQ-AUTH-LOGIN-001",
    ):
        assert str(parse_id(text)) == text
    for text in ("REQ-AUTH-01", "REQ-AUTH", "REQ-auth-001", "FOO-001"):
        assert parse_id(text) is None
    assert next_sequential_id("REQ", "auth", ["REQ-AUTH-001", "REQ-AUTH-009", "REQ-X-100"]) == (
        "REQ-AUTH-010"
    )


def test_distributed_ids_are_valid_and_check_typos() -> None:
    ident = new_distributed_id("REQ", "auth", token="K7Q2M")
    sid = parse_id(ident)
    assert sid is not None and sid.distributed and sid.valid_check_digit
    assert ident.startswith("REQ-AUTH-K7Q2M")
    typo = ident[:-1] + str((int(ident[-1]) + 1) % 10)
    diags = find_collisions([IdLocation(typo, "a.md", 3)])
    assert [d.code for d in diags] == ["id.check-digit"]
    many = {new_distributed_id("REQ", "AUTH") for _ in range(200)}
    assert len(many) == 200
