"""Three real MUSUBI projects (MONJYU, YAGOKORO, TENJIN) read, validated, traced and
round-tripped. The expected IDs are written down in ``musubi_projects_expected.py``."""

# The projects are written in Japanese: the fullwidth parentheses and colons are theirs.
# ruff: noqa: RUF001

from __future__ import annotations

import difflib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from musubi.sdd.design import parse_design
from musubi.sdd.ids import expand_ids, find_ids, next_id_in_style, parse_id
from musubi.sdd.project import Project, load_project
from musubi.sdd.quality import validate_requirements
from musubi.sdd.requirements import Requirement, parse_requirements
from musubi.sdd.tasks import parse_tasks
from musubi.sdd.trace.matrix import build_matrix, collect_links, coverage, find_gaps
from tests.sdd import musubi_projects_expected as expected
from tests.sdd.conftest import CliResult

FIXTURES = Path(__file__).parents[1] / "fixtures" / "musubi-projects"
PROJECTS = ("MONJYU", "YAGOKORO", "TENJIN")
SPEC_FILES = sorted(
    p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/*/**/*.md") if p.is_file()
)
PARSERS: dict[str, Callable[[str, str], Any]] = {
    "requirements": parse_requirements,
    "design": parse_design,
    "tasks": parse_tasks,
}


@pytest.fixture(scope="module")
def loaded() -> dict[str, Project]:
    return {name: load_project(FIXTURES / name) for name in PROJECTS}


def _by_file(docs: list[Any]) -> dict[str, list[str]]:
    return {d.path: sorted(i.id for i in d.items) for d in docs if d.items}


def _sorted(ids: dict[str, list[str]]) -> dict[str, list[str]]:
    """Files list IDs in summary-table order, sections in their own; compare as sets with
    repeats (a sorted list)."""
    return {path: sorted(v) for path, v in ids.items()}


def _copy(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    return root


@pytest.mark.parametrize("name", PROJECTS)
def test_every_requirement_design_record_and_task_is_found(
    loaded: dict[str, Project], name: str
) -> None:
    project = loaded[name]
    assert _by_file(project.requirement_docs) == _sorted(getattr(expected, f"{name}_REQUIREMENTS"))
    assert _by_file(project.design_docs) == _sorted(getattr(expected, f"{name}_ADRS"))
    assert _by_file(project.task_docs) == _sorted(getattr(expected, f"{name}_TASKS"))
    assert {d.path: d.doc_id for d in project.design_docs} == expected.DESIGN_DOCS[name]


def test_totals_per_project(loaded: dict[str, Project]) -> None:
    counts = {name: (len(p.requirements), len(p.adrs), len(p.tasks)) for name, p in loaded.items()}
    # Before: 0 requirements found in each (issue 25).
    assert counts == {"MONJYU": (231, 0, 79), "YAGOKORO": (210, 30, 235), "TENJIN": (85, 10, 52)}


def _req(project: Project, req_id: str) -> Requirement:
    req = project.requirement(req_id)
    assert req is not None, req_id
    return req


def test_titles_patterns_statements_and_criteria_in_every_form(
    loaded: dict[str, Project],
) -> None:
    yag, ten, mon = loaded["YAGOKORO"], loaded["TENJIN"], loaded["MONJYU"]
    # Level-4 heading, no colon, Japanese title with the EARS pattern in fullwidth parentheses.
    kg = _req(yag, "REQ-001-KG-001")
    assert (kg.title, kg.pattern, kg.priority, kg.line) == (
        "エンティティ抽出",
        "Ubiquitous",
        "Must",
        124,
    )
    assert (
        kg.statement == "システムは、Generative AIに関する文書から以下のエンティティを抽出SHALL："
    )
    assert kg.acceptance_criteria[0] == "6種類以上のエンティティタイプを識別できる"
    assert len(kg.acceptance_criteria) == 4
    sec = _req(yag, "REQ-001-SEC-001")
    assert (sec.title, sec.pattern) == ("アクセス制御", "Where-Optional")
    # Bold paragraph block with bullet fields.
    rel = _req(yag, "REQ-002-004")
    assert (rel.title, rel.pattern, rel.priority) == ("関係検証", "Unwanted behavior", "P0")
    assert rel.statement.startswith("IF an inferred relation contradicts existing knowledge")
    assert rel.acceptance_criteria == [
        "AC1: 矛盾検出率95%以上",
        "AC2: 矛盾理由をログに記録",
        "AC3: HITLレビューキューに追加",
    ]
    # Table row: | ID | 種別 | 要件 |.
    row = _req(yag, "REQ-004-02")
    assert (row.pattern, row.statement) == (
        "Event-driven",
        "WHEN a new paper is ingested, the system SHALL extract and index temporal information.",
    )
    # Level-4 heading with colon; statement in a code fence.
    tool = _req(ten, "REQ-TOOL-001")
    assert (tool.title, tool.pattern, tool.priority) == (
        "search_theories",
        "Event-driven",
        "P0 (Critical)",
    )
    assert tool.statement.startswith("WHEN a user submits a natural language query")
    assert len(tool.acceptance_criteria) == 5
    # Fields in a two-column table: | 要件種別 | … |, | EARS形式 | … |.
    crud = _req(ten, "FR-CRUD-002")
    assert (crud.title, crud.pattern, crud.priority) == (
        "理論詳細表示",
        "Event-Driven",
        "Must Have",
    )
    assert crud.statement == (
        "When the user selects a theory from the list, the system shall display the theory "
        "details in the editor panel."
    )
    # A table of requirements with a name column, a pattern column and a Japanese statement.
    inp = _req(mon, "FR-DOC-INP-001")
    assert (inp.title, inp.pattern) == ("ファイル形式検出", "Ubiquitous")
    assert (
        inp.statement
        == "システムは入力ファイルの形式（拡張子、MIMEタイプ）を検出しなければならない"
    )
    # Block quote statement and | 受入基準 | in a field table.
    idx = _req(mon, "REQ-IDX-001")
    assert (idx.pattern, idx.priority) == ("Ubiquitous", "P0 (必須)")
    assert idx.acceptance_criteria == ["100MB以上のドキュメントセットを処理可能"]
    assert idx.statement.startswith("The system SHALL load documents from specified input")
    # Metadata blocks give each document its ID.
    docs = {d.path: d for d in mon.requirement_docs}
    monjyu = docs["storage/features/REQ-MONJYU-001-requirements.md"]
    assert (monjyu.doc_id, monjyu.meta["バージョン"]) == ("MONJYU-REQ-002", "2.0.0")
    tenjin = {d.path: d.doc_id for d in ten.requirement_docs}
    assert tenjin["storage/specs/REQ-002-theory-editor.md"] == "REQ-002"  # **ID**: REQ-002
    v2 = next(d for d in yag.requirement_docs if d.path.endswith("REQ-002-yagokoro-v2.md"))
    assert v2.groups == ["FR-001", "FR-002", "FR-003", "FR-004", "FR-005", "FR-006"]
    # A name-only NFR row: the "要件" cell is its title, it has no statement.
    nfr = _req(ten, "REQ-NFR-001")
    assert (nfr.title, nfr.statement) == ("単純検索応答時間", "")


def test_tasks_priorities_dependencies_and_requirements(loaded: dict[str, Project]) -> None:
    ten = {t.id: t for t in loaded["TENJIN"].tasks}
    assert (ten["TASK-1.1"].title, ten["TASK-1.1"].priority) == ("プロジェクト初期化", "P0")
    # ### TASK-006 has the details; the summary row above gives priority, deps, requirements.
    t6 = ten["TASK-006"]
    assert (t6.title, t6.priority, t6.depends_on) == (
        "CRUD Module リファクタリング",
        "HIGH",
        ["TASK-005"],
    )
    assert t6.requirements == [f"FR-CRUD-00{n}" for n in range(1, 6)]  # "FR-CRUD-001〜005"
    assert ten["TASK-005"].depends_on == ["TASK-002", "TASK-003", "TASK-004"]  # "TASK-002,003,004"
    mon = {t.id: t for t in loaded["MONJYU"].tasks}
    assert mon["TASK-001-06"].depends_on == [f"TASK-001-0{n}" for n in range(1, 6)]  # "~05"
    yag = {t.id: t for t in loaded["YAGOKORO"].tasks}
    assert yag["T-103"].depends_on == ["T-101"] and yag["T-103"].requirements == ["REQ-004-01"]


@pytest.mark.parametrize("rel", SPEC_FILES)
def test_reading_then_writing_changes_nothing(rel: str) -> None:
    text = (FIXTURES / rel).read_bytes().decode("utf-8")
    for parse in PARSERS.values():
        assert parse(text, rel).render() == text


def test_loading_and_saving_whole_projects_rewrites_nothing(tmp_path: Path) -> None:
    for name in PROJECTS:
        root = _copy(tmp_path, name)
        before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
        project = load_project(root)
        assert not any(project.save(doc) for doc in project.documents)
        assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def _diff(old: str, new: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


@pytest.mark.parametrize(
    ("rel", "req_id", "attr", "value", "old_line", "new_line"),
    [
        (
            "YAGOKORO/storage/specs/REQ-001-genai-graphrag-system.md",
            "REQ-001-KG-002",
            "priority",
            "Should",
            "**優先度**: Must",
            "**優先度**: Should",
        ),
        (
            "YAGOKORO/storage/specs/REQ-001-genai-graphrag-system.md",
            "REQ-001-KG-002",
            "title",
            "関係抽出",
            "#### REQ-001-KG-002 関係性抽出（Ubiquitous）",
            "#### REQ-001-KG-002 関係抽出（Ubiquitous）",
        ),
        (
            "YAGOKORO/storage/specs/REQ-001-genai-graphrag-system.md",
            "REQ-001-KG-002",
            "id",
            "REQ-001-KG-009",
            "#### REQ-001-KG-002 関係性抽出（Ubiquitous）",
            "#### REQ-001-KG-009 関係性抽出（Ubiquitous）",
        ),
        (
            "TENJIN/storage/specs/REQ-002-theory-editor.md",
            "FR-CRUD-001",
            "priority",
            "Should Have",
            "| 優先度 | Must Have |",
            "| 優先度 | Should Have |",
        ),
        (
            "MONJYU/storage/specs/MONJYU-MECE-requirements.md",
            "FR-DOC-INP-002",
            "pattern",
            "Event-driven",
            "| FR-DOC-INP-002 | テキストファイル読込 | Ubiquitous | システムは .txt, .md, .json "
            "ファイルを読み込めなければならない |",
            "| FR-DOC-INP-002 | テキストファイル読込 | Event-driven | システムは .txt, .md, "
            ".json ファイルを読み込めなければならない |",
        ),
        (
            "YAGOKORO/storage/specs/REQ-003-yagokoro-v3.md",
            "REQ-002-003",
            "priority",
            "P1",
            "- **Priority**: P0",
            "- **Priority**: P1",
        ),
    ],
)
def test_editing_one_field_changes_only_that_value(
    rel: str, req_id: str, attr: str, value: str, old_line: str, new_line: str
) -> None:
    text = (FIXTURES / rel).read_text(encoding="utf-8")
    doc = parse_requirements(text, rel)
    req = doc.get(req_id)
    assert req is not None
    setattr(req, attr, value)
    assert _diff(text, doc.render()) == [f"-{old_line}", f"+{new_line}"]


def test_a_row_cannot_grow_a_column_it_does_not_have() -> None:
    rel = "MONJYU/storage/specs/MONJYU-MECE-requirements.md"
    doc = parse_requirements((FIXTURES / rel).read_text(encoding="utf-8"), rel)
    req = doc.get("FR-DOC-INP-001")
    assert req is not None
    req.priority = "P0"
    with pytest.raises(ValueError, match="FR-DOC-INP-001 is a table row with no Priority column"):
        doc.render()


def test_ambiguities_name_file_and_line_and_the_rest_loads(tmp_path: Path) -> None:
    root = _copy(tmp_path, "MONJYU")
    spec = root / "storage/features/REQ-MONJYU-001-requirements.md"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("#### REQ-IDX-002:", "#### REQ-IDX-02:"),
        encoding="utf-8",
    )
    project = load_project(root)
    found = {d.code: [] for d in project.all_diagnostics()}
    for d in project.all_diagnostics():
        found[d.code].append(str(d))
    assert found["parse.bad-id"] == [
        "storage/features/REQ-MONJYU-001-requirements.md:56: error: heading 'REQ-IDX-02: "
        "テキストユニット分割' looks like a REQ block but 'REQ-IDX-02' is not a valid ID; expected "
        "e.g. REQ-AUTH-001; this section is not loaded"
    ]
    # The same NFR defined by two requirement documents of the project.
    assert (
        "storage/specs/MONJYU-MECE-requirements.md:488: error: NFR-PERF-001 is defined twice: "
        "here and at storage/features/REQ-MONJYU-001-requirements.md:718 (renumber one, or use "
        "a distributed ID: --distributed)"
    ) in found["id.collision"]
    # Steering in steering/ and storage/steering/: one constitution is used, the other named.
    assert found["layout.ambiguous"] == [
        "storage/steering/rules/constitution.md:1: warning: storage/steering/rules/constitution.md "
        "and steering/rules/constitution.md both exist; using steering/rules/constitution.md "
        "(merge them, or delete one)"
    ]
    # A file whose name does not say what it holds is read for all three kinds, and said so.
    assert found["layout.unclassified"][0] == (
        "storage/features/FEAT-001-document-processing.md: info: "
        "storage/features/FEAT-001-document-processing.md: neither its folder nor its name says "
        "requirements, design or tasks; it is read for all three (rename it, e.g. "
        "FEAT-001-document-processing-requirements.md, to say which)"
    )
    assert len(project.requirements) == 230  # all but the broken one
    assert project.requirement("REQ-IDX-003") is not None
    assert {d.name for d in project.steering.docs} == {"product", "structure", "tech"}


def test_design_records_numbered_per_document_are_a_warning(loaded: dict[str, Project]) -> None:
    clashes = [d for d in loaded["YAGOKORO"].diagnostics if d.code == "id.collision"]
    assert {d.severity.value for d in clashes} == {"warning"}
    assert str(clashes[0]).startswith(
        "storage/specs/DES-002-phase2-enhancements.md:1957: warning: ADR-005 is defined twice: "
        "here and at storage/specs/DES-001-genai-graphrag-system.md:305"
    )


def test_quality_findings_a_person_agrees_with(loaded: dict[str, Project]) -> None:
    findings = {
        (d.item, d.code): d.message
        for p in loaded.values()
        for d in validate_requirements(p.requirements)
    }
    # Declares Event-driven, but nothing triggers it.
    assert findings["FR-QRY-VEC-002", "ears.pattern-mismatch"].endswith(
        "declares pattern 'Event-driven' but the statement is ubiquitous"
    )
    # "CLIから、…を実行できなければならない": no system does it.
    assert "has no system before its response" in findings["FR-006-01", "ears.no-system"]
    # A WHILE clause that is really a trigger ("…更新された時").
    assert "ends in a trigger" in findings["REQ-002-AUTO-004", "ears.mixed-clause"]
    assert "'intuitive'" in findings["NFR-USABILITY-001", "quality.vague"]
    assert "'最適'" in findings["FR-QRY-UNI-001", "quality.vague"]
    # Not findings: "asks about", "Large Language Model", a Japanese WHEN … 時 … SHALL.
    assert ("REQ-TOOL-011", "quality.vague") not in findings
    assert ("REQ-008-05", "quality.vague") not in findings
    assert not [k for k in findings if k[0] == "REQ-001-KG-004"]


def test_trace_resolves_code_and_test_references(tmp_path: Path) -> None:
    root = _copy(tmp_path, "TENJIN")
    shutil.copytree(FIXTURES / "code" / "TENJIN", root, dirs_exist_ok=True)
    project = load_project(root)
    matrix = build_matrix(project, collect_links(project, commits=False))
    tool = matrix.entries["REQ-TOOL-001"]
    assert [(x.path, x.line, x.via) for x in tool.code] == [
        ("src/tenjin/tools/search.py", 5, "comment")
    ]
    assert [(x.path, x.line, x.via) for x in tool.tests] == [
        ("tests/test_search_tools.py", 4, "test-name")
    ]
    crud = matrix.entries["FR-CRUD-001"]
    assert crud.status == "fully-traced"
    assert [x.path for x in crud.design] == ["storage/specs/DESIGN-002-theory-editor.md"]
    # Counted by hand: 24 requirements are named in the design docs (FR-CRUD-001〜005 is five),
    # three in code, three in tests, and only FR-CRUD-001 in all of design, code and tests.
    cov = coverage(matrix)
    assert (cov["requirements"], cov["design"], cov["code"], cov["tests"]) == (85, 28.2, 3.5, 3.5)
    assert (cov["fullyTraced"], cov["coveragePercent"]) == (1, 1.2)
    unknown = {(g.id, g.file, g.line) for g in find_gaps(matrix) if g.kind == "unknown-id"}
    assert unknown == {
        ("REQ-TOOL-999", "src/tenjin/tools/search.py", 15),
        ("NFR-001", "storage/specs/DESIGN-001-architecture.md", 705),
        ("NFR-002", "storage/specs/DESIGN-001-architecture.md", 706),
    }


def test_trace_of_long_ids_from_typescript(tmp_path: Path) -> None:
    root = _copy(tmp_path, "YAGOKORO")
    shutil.copytree(FIXTURES / "code" / "YAGOKORO", root, dirs_exist_ok=True)
    project = load_project(root)
    matrix = build_matrix(project, collect_links(project, commits=False))
    assert [x.line for x in matrix.entries["REQ-001-KG-001"].code] == [1]
    assert [x.line for x in matrix.entries["REQ-001-NFR-003"].code] == [3]
    # TASKS-003 and the v3 matrix cite REQ-003-0xx; the v3 requirements are REQ-002-0xx.
    unknown = {g.id for g in find_gaps(matrix) if g.kind == "unknown-id"}
    assert "REQ-003-005" in unknown and "REQ-002-005" not in unknown
    # TASK-V2-001 implements "FR-001", the group of FR-001-01…08: not an unknown ID.
    assert "FR-001" not in unknown


@pytest.mark.parametrize("name", ["TENJIN", "MONJYU"])
def test_init_keeps_an_existing_layout(
    tmp_path: Path, musubi: Callable[..., CliResult], name: str
) -> None:
    root = _copy(tmp_path, name)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code, out, err = musubi("init", "--json", "-C", str(root))
    assert code == 0
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert {p: b for p, b in after.items() if p in before} == before
    added = sorted(p.relative_to(root).as_posix() for p in set(after) - set(before))
    assert added and all(not a.startswith(("steering/", "storage/")) for a in added)
    assert "CLAUDE.md" in added
    rows = {r["file"]: r["action"] for r in json.loads(out)}
    assert rows["steering/rules/constitution-levels.yml"] == "not created (layout kept)"
    assert rows["storage/design/.gitkeep"] == "not created (layout kept)"
    assert "existing MUSUBI project" in err
    if name == "TENJIN":
        assert "documents in 'ja' only" in err
    else:
        assert "steering in steering, storage/steering" in err


def test_one_id_grammar_for_every_shape_users_write() -> None:
    shapes = [
        "REQ-001-KG-001",
        "REQ-TOOL-001",
        "REQ-001-NFR-003",
        "REQ-004-01",
        "REQ-004-N01",
        "FR-CRUD-001",
        "FR-IDX-L1-001",
        "FR-001-01",
        "NFR-USABILITY-001",
        "DES-001",
        "DESIGN-002",
        "ADR-002-001",
        "TASK-1.1",
        "TASK-V2-001",
        "TASK-01-ML-001",
        "TASK-001-01",
        "TSK-042",
        "T-101",
    ]
    for text in shapes:
        sid = parse_id(text)
        assert sid is not None and str(sid) == text, text
    # A short number after a word is a typo of the usual three digits.
    for text in ("REQ-AUTH-02", "TASK-V2-01", "T-N01", "REQ-IDX-1"):
        assert parse_id(text) is None, text
    assert find_ids("see DES-002-phase2-enhancements.md, TEST-001-KG-001-*, REQ-IDX-001：") == [
        ("REQ-IDX-001", 55)
    ]
    assert expand_ids("TASK-002,003,004 / FR-CRUD-001〜003") == [
        "TASK-002",
        "TASK-003",
        "TASK-004",
        "FR-CRUD-001",
        "FR-CRUD-002",
        "FR-CRUD-003",
    ]


@pytest.mark.parametrize(
    ("kind", "doc_ids", "new"),
    [
        ("TASK", ["TASK-1.1", "TASK-2.3"], "TASK-2.4"),
        ("TASK", ["T-101", "T-108"], "T-109"),
        ("TASK", ["TASK-001-01", "TASK-001-08"], "TASK-001-09"),
        ("REQ", ["REQ-001-KG-001", "REQ-001-KG-004"], "REQ-001-KG-005"),
        ("REQ", ["FR-CRUD-001", "FR-CRUD-005"], "FR-CRUD-006"),
        ("ADR", ["ADR-002-001", "ADR-002-004"], "ADR-002-005"),
        ("TASK", [], "TASK-001"),
    ],
)
def test_new_ids_follow_the_documents_style(kind: str, doc_ids: list[str], new: str) -> None:
    assert next_id_in_style(kind, doc_ids, doc_ids) == new


def test_requirements_add_writes_an_id_in_the_files_style(
    tmp_path: Path, musubi: Callable[..., CliResult]
) -> None:
    root = _copy(tmp_path, "TENJIN")
    code, out, err = musubi(
        "requirements",
        "add",
        "REQ-002-theory-editor",
        "--title",
        "理論複製",
        "--statement",
        "When the user clicks the copy button, the system shall duplicate the theory.",
        "-C",
        str(root),
    )
    assert code == 0, err
    # The file's kind (FR, not REQ) and its most used scope.
    assert out.strip() == "FR-CRUD-006"
    added = load_project(root).requirement("FR-CRUD-006")
    assert added is not None and added.title == "理論複製"


def test_trace_commands_on_a_real_project(tmp_path: Path, musubi: Callable[..., CliResult]) -> None:
    root = _copy(tmp_path, "TENJIN")
    shutil.copytree(FIXTURES / "code" / "TENJIN", root, dirs_exist_ok=True)
    code, out, _ = musubi("trace", "matrix", "--no-commits", "--json", "-C", str(root))
    assert code == 0
    rows = {r["id"]: r for r in json.loads(out)}
    assert len(rows) == 85
    assert [c["line"] for c in rows["REQ-TOOL-001"]["code"]] == [5]
    assert rows["FR-CRUD-001"]["status"] == "fully-traced"
    code, out, err = musubi("trace", "check", "--no-commits", "-C", str(root))
    assert code == 1
    text = out + err
    assert (
        "src/tenjin/tools/search.py:15 refers to REQ-TOOL-999, which is not a requirement" in text
    )
    assert "REQ-TOOL-001, which is not a requirement" not in text
    assert "FR-CRUD-001 has no" not in text  # design, code and tests: fully traced
    code, out, _ = musubi("trace", "matrix", "--no-commits", "--write", "-C", str(root))
    assert code == 0
    matrix = (root / "storage/traceability/matrix.yml").read_text(encoding="utf-8")
    assert "FR-CRUD-001:\n    title: 理論一覧表示" in matrix
