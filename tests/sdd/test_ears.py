"""EARS classification and the exact messages people see."""

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
