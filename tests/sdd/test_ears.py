"""EARS classification and the exact messages people see."""

# Japanese statements keep their fullwidth punctuation.
# ruff: noqa: RUF001

from __future__ import annotations

import pytest

from musubi.sdd.ears import classify
from musubi.sdd.quality import validate_requirements
from musubi.sdd.requirements import parse_requirements


@pytest.mark.parametrize(
    ("statement", "pattern"),
    [
        ("The system SHALL hash every password with bcrypt.", "ubiquitous"),
        ("WHEN a user submits the form, the system SHALL store it.", "event-driven"),
        ("When a user submits the form, THEN the system shall store it.", "event-driven"),
        ("WHILE the cart is open, the system SHALL keep prices fixed.", "state-driven"),
        ("IF the card is declined, THEN the system SHALL show the reason.", "unwanted"),
        ("WHERE MFA is enabled, the system SHALL ask for a TOTP code.", "optional"),
        (
            "WHILE a session is active, WHEN the client calls /refresh, the system SHALL "
            "issue a new token.",
            "complex",
        ),
    ],
)
def test_five_patterns_and_combinations(statement: str, pattern: str) -> None:
    result = classify(statement)
    assert result.pattern == pattern
    assert [p for p in result.problems if p[0] == "error"] == []


def test_complex_statement_keeps_each_clause() -> None:
    result = classify(
        "WHERE MFA is on, WHILE online, WHEN a code arrives, the app SHALL verify it."
    )
    assert result.clauses == [
        ("WHERE", "MFA is on"),
        ("WHILE", "online"),
        ("WHEN", "a code arrives"),
    ]
    assert (result.system, result.response) == ("the app", "verify it")


DOC = """# Requirements

## 1. Auth

### REQ-AUTH-003: Save draft

**Pattern**: Event-Driven
**Priority**: P1

**EARS Statement**:
```
WHEN the user clicks save, the system SHALL
```

**Acceptance Criteria**:
- [ ] Draft stored
"""


def _messages(doc: str) -> list[str]:
    reqs = parse_requirements(doc, "storage/specs/auth-requirements.md").items
    return [d.message for d in validate_requirements(reqs)]


def test_missing_response_names_id_line_and_pattern() -> None:
    assert _messages(DOC) == [
        "REQ-AUTH-003 (line 12): event-driven requirement has no response after SHALL"
    ]


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("WHEN , the system SHALL save.", "event-driven requirement has no trigger after WHEN"),
        (
            "WHEN the user clicks save SHALL store it.",
            "event-driven requirement has no system name before SHALL",
        ),
        ("The system must store drafts.", "statement has no SHALL (found 'must'"),
        (
            "IF the disk is full the system SHALL warn.",
            "unwanted-behaviour requirement should read 'IF <condition>, THEN",
        ),
        ("The system SHALL save drafts and SHALL email the user.", "has 2 SHALLs"),
        ("The system SHALL respond fast.", "vague term 'fast'"),
        ("The system SHALL be user-friendly.", "vague term 'user-friendly'"),
        ("WHEN asked, the system SHALL export data as appropriate.", "vague term 'as appropriate'"),
        ("The system SHALL support TBD formats.", "untestable wording: 'TBD'"),
    ],
)
def test_precise_messages(statement: str, message: str) -> None:
    doc = DOC.replace("WHEN the user clicks save, the system SHALL", statement)
    found = _messages(doc)
    assert any(m.startswith("REQ-AUTH-003 (line 12): ") and message in m for m in found), found


def test_declared_pattern_must_match_statement() -> None:
    doc = DOC.replace("**Pattern**: Event-Driven", "**Pattern**: Ubiquitous").replace(
        "WHEN the user clicks save, the system SHALL", "WHEN saved, the system SHALL log it."
    )
    assert _messages(doc) == [
        "REQ-AUTH-003 (line 12): declares pattern 'Ubiquitous' but the statement is event-driven"
    ]


def test_missing_acceptance_criteria_is_reported_on_the_heading_line() -> None:
    doc = DOC.replace(
        "WHEN the user clicks save, the system SHALL", "WHEN saved, the system SHALL log it."
    ).split("**Acceptance")[0]
    assert _messages(doc) == [
        "REQ-AUTH-003 (line 5): no acceptance criteria; add '**Acceptance Criteria**:' with "
        "observable outcomes"
    ]


def test_statement_without_field_label_is_found_in_the_body() -> None:
    doc = "### REQ-X-001: Plain\n\nThe system SHALL log every login.\n"
    req = parse_requirements(doc, "r.md").items[0]
    assert (req.statement, req.statement_line) == ("The system SHALL log every login.", 3)


# The standard Japanese forms of the five patterns, and English keywords in Japanese text as
# MUSUBI users write them.
@pytest.mark.parametrize(
    ("statement", "pattern", "system", "response"),
    [
        (
            "システムは、パスワードをbcryptでハッシュ化しなければならない。",
            "ubiquitous",
            "システム",
            "パスワードをbcryptでハッシュ化",
        ),
        (
            "ユーザーがフォームを送信したとき、システムは内容を保存しなければならない。",
            "event-driven",
            "システム",
            "内容を保存",
        ),
        (
            "カートが開いている間、システムは価格を固定しなければならない。",
            "state-driven",
            "システム",
            "価格を固定",
        ),
        (
            "もしカードが拒否されたならば、システムは理由を表示しなければならない。",
            "unwanted",
            "システム",
            "理由を表示",
        ),
        (
            "MFAが有効な場合、システムはTOTPコードを要求しなければならない。",
            "optional",
            "システム",
            "TOTPコードを要求",
        ),
        (
            "MFAが有効な場合、セッションが有効な間、システムはトークンを更新しなければならない。",
            "complex",
            "システム",
            "トークンを更新",
        ),
        (
            "WHEN ユーザーがファイルをインポートした時、システムはグラフに追加SHALL。",
            "event-driven",
            "システム",
            "グラフに追加",
        ),
        (
            "IF クエリ解析に失敗した場合、THEN システムはエラーを返却SHALL。",
            "unwanted",
            "システム",
            "エラーを返却",
        ),
        (
            "WHERE 認証が有効化されている場合、システムはAPIキーを要求SHALL。",
            "optional",
            "システム",
            "APIキーを要求",
        ),
        (
            "WHILE バックアップが有効な間、システムはスナップショットを作成SHALL。",
            "state-driven",
            "システム",
            "スナップショットを作成",
        ),
    ],
)
def test_japanese_statements_of_each_pattern(
    statement: str, pattern: str, system: str, response: str
) -> None:
    result = classify(statement)
    assert (result.pattern, result.system, result.response) == (pattern, system, response)
    assert result.problems == []


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        # ubiquitous: no obligation (a description, not a requirement)
        ("システムはパスワードをハッシュ化する。", "ears.no-shall"),
        # event-driven: nobody responds
        ("ユーザーがフォームを送信したとき、しなければならない。", "ears.no-system"),
        # state-driven: a WHILE clause that is a trigger
        ("WHILE グラフが更新された時、システムは再計算SHALL。", "ears.mixed-clause"),
        # unwanted: empty condition
        ("もしならば、システムは理由を表示しなければならない。", "ears.empty-clause"),
        # optional: no response before the obligation
        ("MFAが有効な場合、システムは、しなければならない。", "ears.no-response"),
        # two obligations in one requirement
        (
            "システムはログを記録しなければならず、通知を送らなければならない。",
            "ears.compound",
        ),
    ],
)
def test_japanese_statements_that_break_a_pattern(statement: str, code: str) -> None:
    assert code in [c for _, c, _ in classify(statement).problems]


def test_pattern_named_in_a_japanese_heading_is_checked() -> None:
    doc = parse_requirements(
        "# 要件\n\n#### REQ-001-KG-001 エンティティ抽出（Event-driven）\n"
        "**要件**: システムは、文書からエンティティを抽出しなければならない。\n",
        "r.md",
    )
    req = doc.items[0]
    assert (req.title, req.pattern) == ("エンティティ抽出", "Event-driven")
    codes = [d.code for d in validate_requirements(doc.items, require_criteria=False)]
    assert "ears.pattern-mismatch" in codes
