"""Layouts and notations the three fixture projects do not use but MUSUBI users write.

A project built here from the shapes the issue lists (``storage/features/<feature>/…``,
``REQ-<PROJECT>-INT-v0.3.0.md``, ``TSK-…``, ``DES-…``/``DESIGN-…`` records, translations,
steering only under ``storage/steering/``), so the reader is not fitted to three projects.
"""

# Japanese text keeps its fullwidth punctuation.
# ruff: noqa: RUF001

from __future__ import annotations

from pathlib import Path

from musubi.sdd.project import load_project
from musubi.sdd.requirements import parse_requirements
from musubi.sdd.trace.matrix import build_matrix, collect_links, coverage

FILES = {
    "storage/steering/product.ja.md": "# プロダクト\n",
    "storage/steering/structure.ja.md": "# 構成\n",
    "storage/steering/tech.ja.md": "# 技術\n",
    "storage/features/auth/requirements.md": (
        "# 認証 要件\n\n**ID**: REQ-AUTH\n\n"
        "### [REQ-AUTH-001] ログイン（Event-driven）\n\n"
        "> ユーザーが正しい資格情報を送信したとき、"
        "システムはセッションを作成しなければならない。\n\n"
        "**受入条件**:\n- [ ] セッションが保存される\n\n"
        "### `REQ-AUTH-002` - ロックアウト\n\n"
        "**要件**: もし5回連続で失敗したならば、"
        "システムはアカウントを15分間ロックしなければならない。\n"
    ),
    "storage/features/auth/requirements.ja.md": "### REQ-AUTH-001: (translation)\n",
    "storage/features/auth/design.md": (
        "# Auth design\n\n## Component\n\n"
        "### DES-AUTH-001: Session store\n\nImplements REQ-AUTH-001.\n\n"
        "### DESIGN-AUTH-002 Lockout counter\n\nCovers REQ-AUTH-002.\n\n"
        "### DES-AUTH-003: Audit\n\n#### DES-AUTH-004: Audit log\n\nAppend-only.\n"
    ),
    "storage/specs/REQ-SHOP-INT-v0.3.0.md": (
        "# 連携要件\n\n**文書番号**: SHOP-INT-0.3\n\n"
        "## 1. 機能要件\n\n### FR-INT-001：外部連携\n\n"
        "| 項目 | 内容 |\n|------|------|\n| 要件種別 | Optional |\n"
        "| EARS形式 | 連携が有効な場合、システムは注文を送信しなければならない |\n"
    ),
    "storage/specs/TSK-001-auth.md": (
        "# Tasks\n\n| Task ID | Task | Depends | Requirement |\n|---|---|---|---|\n"
        "| TSK-001 | Session table | - | REQ-AUTH-001 |\n"
        "| TSK-002 | Lockout | TSK-001 | REQ-AUTH-002 |\n\n"
        "## TSK-002: Lockout\n\nDetails of the lockout counter.\n"
    ),
    "src/auth/session.py": "# REQ-AUTH-001: create the session\n",
    "tests/test_auth.py": "def test_req_auth_001_login():\n    pass\n",
}


def _project(tmp_path: Path) -> Path:
    for rel, text in FILES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_unseen_layout_loads_with_every_item(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path))
    reqs = {r.id: r for r in project.requirements}
    assert list(reqs) == ["REQ-AUTH-001", "REQ-AUTH-002", "FR-INT-001"]
    assert (reqs["REQ-AUTH-001"].title, reqs["REQ-AUTH-001"].pattern) == (
        "ログイン",
        "Event-driven",
    )
    assert reqs["REQ-AUTH-001"].acceptance_criteria == ["セッションが保存される"]
    assert reqs["REQ-AUTH-002"].title == "ロックアウト"
    assert reqs["FR-INT-001"].title == "外部連携"
    assert reqs["FR-INT-001"].statement.startswith("連携が有効な場合")
    assert [a.id for a in project.adrs] == ["DES-AUTH-001", "DESIGN-AUTH-002", "DES-AUTH-004"]
    # A record holding another is read as a group, and said so with file and line.
    groups = [str(d) for d in project.all_diagnostics() if d.code == "parse.group"]
    assert groups == [
        "storage/features/auth/design.md:13: info: DES-AUTH-003 has DES-AUTH-004 inside its "
        "section: read as a group heading, not an item (give DES-AUTH-003 its own section to "
        "make it one)"
    ]
    tasks = {t.id: t for t in project.tasks}
    assert list(tasks) == ["TSK-001", "TSK-002"]
    assert (tasks["TSK-002"].depends_on, tasks["TSK-002"].requirements) == (
        ["TSK-001"],
        ["REQ-AUTH-002"],
    )
    # The translation repeats REQ-AUTH-001 and is not read as a second definition.
    assert not [d for d in project.all_diagnostics() if d.severity == "error"]
    assert {d.name for d in project.steering.docs} == {"product", "structure", "tech"}
    docs = {d.path: d.doc_id for d in project.requirement_docs}
    assert docs == {
        "storage/features/auth/requirements.md": "REQ-AUTH",
        "storage/specs/REQ-SHOP-INT-v0.3.0.md": "SHOP-INT-0.3",
    }


def test_unseen_layout_validates_and_traces(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path))
    from musubi.sdd.quality import validate_requirements

    errors = [d for d in validate_requirements(project.requirements) if d.severity.value == "error"]
    assert errors == []
    matrix = build_matrix(project, collect_links(project, commits=False))
    assert matrix.entries["REQ-AUTH-001"].status == "fully-traced"
    assert [x.path for x in matrix.entries["REQ-AUTH-002"].design] == [
        "storage/features/auth/design.md"
    ]
    assert coverage(matrix)["coveragePercent"] == 33.3  # 1 of 3


def test_title_edits_keep_the_headings_own_punctuation(tmp_path: Path) -> None:
    root = _project(tmp_path)
    rel = "storage/specs/REQ-SHOP-INT-v0.3.0.md"
    text = (root / rel).read_text(encoding="utf-8")
    doc = parse_requirements(text, rel)
    req = doc.get("FR-INT-001")
    assert req is not None
    req.title = "外部システム連携"
    assert doc.render() == text.replace(
        "### FR-INT-001：外部連携", "### FR-INT-001：外部システム連携"
    )
    rel = "storage/features/auth/requirements.md"
    text = (root / rel).read_text(encoding="utf-8")
    doc = parse_requirements(text, rel)
    first = doc.get("REQ-AUTH-001")
    assert first is not None
    first.title = "サインイン"
    assert doc.render() == text.replace("ログイン（Event-driven）", "サインイン（Event-driven）")
