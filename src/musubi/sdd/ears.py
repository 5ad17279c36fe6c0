"""EARS: the five requirement patterns and their combinations.

=============  =================================================================
ubiquitous     The <system> SHALL <response>
event-driven   WHEN <trigger>, the <system> SHALL <response>
state-driven   WHILE <state>, the <system> SHALL <response>
unwanted       IF <condition>, THEN the <system> SHALL <response>
optional       WHERE <feature is included>, the <system> SHALL <response>
complex        clauses combined, in the order WHERE, WHILE, WHEN/IF
=============  =================================================================

:func:`classify` reads a statement; :func:`check_requirement` turns what it found into
diagnostics such as ``REQ-AUTH-003 (line 12): event-driven requirement has no response after
SHALL``. Keywords are matched in any case at the start of the statement or after a comma, and
in upper case anywhere. Statements in Japanese (or mixing Japanese text with WHEN/SHALL) are
read by :mod:`musubi.sdd.ears_ja`. The pattern a requirement declares (a field, or the
parenthesised name after its heading's title) is checked against the statement's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from musubi.sdd.diagnostics import Diagnostic, Severity
from musubi.sdd.ears_ja import classify_ja, is_japanese
from musubi.sdd.requirements import Requirement

__all__ = ["PATTERNS", "EarsStatement", "check_requirement", "classify", "declared_pattern"]

KEYWORD_PATTERN = {
    "WHERE": "optional",
    "WHILE": "state-driven",
    "WHEN": "event-driven",
    "IF": "unwanted",
}
PATTERNS = ("ubiquitous", "event-driven", "state-driven", "unwanted", "optional", "complex")
_WHAT = {"WHEN": "trigger", "WHILE": "state", "IF": "condition", "WHERE": "feature"}
_ORDER = {"WHERE": 0, "WHILE": 1, "WHEN": 2, "IF": 2}
_CLAUSE = re.compile(
    r"(?:^|(?<=,)\s*|(?<=\band)\s+)(?i:(when|while|if|where))\b|\b(WHEN|WHILE|IF|WHERE)\b"
)
_THEN = re.compile(r"(?:^|,\s*|\s)(?i:then)\b|\bTHEN\b")


@dataclass
class EarsStatement:
    text: str
    pattern: str | None = None
    clauses: list[tuple[str, str]] = field(default_factory=list)
    system: str = ""
    response: str = ""
    problems: list[tuple[Severity, str, str]] = field(default_factory=list)  # severity, code, msg

    @property
    def kinds(self) -> list[str]:
        return [KEYWORD_PATTERN.get(k, k) for k, _ in self.clauses]


def _pattern_of(keywords: list[str]) -> str:
    kinds = list(dict.fromkeys(KEYWORD_PATTERN[k] for k in keywords))
    if not kinds:
        return "ubiquitous"
    return kinds[0] if len(kinds) == 1 else "complex"


def classify(statement: str) -> EarsStatement:
    text = re.sub(r"\s+", " ", statement).strip()
    if is_japanese(text):
        pattern, clauses, system, response, problems = classify_ja(text)
        return EarsStatement(text, pattern, clauses, system, response, problems)
    out = EarsStatement(text=text)
    shall = re.search(r"(?<![A-Za-z])shall(?![A-Za-z])", text, re.IGNORECASE)
    if shall is None:
        alt = re.search(r"\b(must|should|will|may|can)\b", text, re.IGNORECASE)
        hint = f" (found {alt[1]!r}; EARS uses SHALL)" if alt else ""
        out.problems.append(
            (
                Severity.ERROR,
                "ears.no-shall",
                f"statement has no SHALL{hint}; expected '… the <system> SHALL <response>'",
            )
        )
        return out
    pre, post = text[: shall.start()].strip(), text[shall.end() :].strip()
    starts = [(m.start(), (m[1] or m[2]).upper(), m.end()) for m in _CLAUSE.finditer(pre)]
    keywords = [k for _, k, _ in starts]
    out.pattern = pattern = _pattern_of(keywords)
    label = f"{pattern} requirement" if pattern != "unwanted" else "unwanted-behaviour requirement"
    if starts and pre[: starts[0][0]].strip(" ,"):
        out.problems.append(
            (
                Severity.WARNING,
                "ears.leading-text",
                f"{label} has text before {starts[0][1]}: {pre[: starts[0][0]].strip()!r}",
            )
        )
    subject_part = pre
    for n, (_pos, kw, body_start) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(pre)
        body = pre[body_start:end].strip()
        if n + 1 == len(starts):
            then = _THEN.search(body)
            if then:
                clause, subject_part = body[: then.start()], body[then.end() :]
            elif "," in body:
                clause, subject_part = body.rsplit(",", 1)
            else:
                clause, subject_part = body, ""
        else:
            clause = body
        clause = clause.strip(" ,")
        out.clauses.append((kw, clause))
        if not clause:
            out.problems.append(
                (Severity.ERROR, "ears.empty-clause", f"{label} has no {_WHAT[kw]} after {kw}")
            )
    if "IF" in keywords and not _THEN.search(pre):
        out.problems.append(
            (
                Severity.WARNING,
                "ears.if-without-then",
                f"{label} should read 'IF <condition>, THEN the <system> SHALL …'",
            )
        )
    ranks = [_ORDER[k] for k in keywords]
    if ranks != sorted(ranks):
        out.problems.append(
            (
                Severity.INFO,
                "ears.clause-order",
                f"{label} combines clauses out of EARS order; put WHERE before "
                "WHILE before WHEN/IF",
            )
        )
    out.system = subject_part.strip(" ,")
    if not out.system:
        where = (
            "after the last clause, e.g. ', the <system> SHALL'"
            if starts
            else "e.g. 'The <system> SHALL'"
        )
        out.problems.append(
            (Severity.ERROR, "ears.no-system", f"{label} has no system name before SHALL ({where})")
        )
    out.response = post.strip(" .;:")
    if not out.response or out.response.lower() == "not":
        out.problems.append(
            (Severity.ERROR, "ears.no-response", f"{label} has no response after SHALL")
        )
    more = len(re.findall(r"\bshall\b", post, re.IGNORECASE))
    if more:
        out.problems.append(
            (
                Severity.WARNING,
                "ears.compound",
                f"{label} has {more + 1} SHALLs; state one response per requirement",
            )
        )
    trailing = re.search(r"(?:,\s*|\s)(when|while|if)\s", post, re.IGNORECASE)
    if pattern == "ubiquitous" and trailing and trailing[1].isupper():
        out.problems.append(
            (
                Severity.WARNING,
                "ears.trailing-condition",
                f"condition {trailing[1]!r} after SHALL; put it first "
                f"({trailing[1].upper()} …, the <system> SHALL …)",
            )
        )
    return out


def declared_pattern(value: str | None) -> str | None:
    """Normalise a ``**Pattern**`` field (``Event-Driven``, ``Unwanted Behavior``…)."""
    if not value:
        return None
    v = re.sub(r"[^a-z\u3040-\u9fff]", "", value.lower())
    for key, name in (
        ("complex", "complex"),
        ("ubiquitous", "ubiquitous"),
        ("event", "event-driven"),
        ("state", "state-driven"),
        ("unwanted", "unwanted"),
        ("optional", "optional"),
        ("whereoptional", "optional"),
        ("where", "optional"),
        ("\u30e6\u30d3\u30ad\u30bf\u30b9", "ubiquitous"),  # ユビキタス
        ("\u30a4\u30d9\u30f3\u30c8", "event-driven"),  # イベント駆動
        ("\u72b6\u614b", "state-driven"),  # 状態駆動
        ("\u671b\u307e\u3057\u304f\u306a\u3044", "unwanted"),  # 望ましくない振る舞い
        ("\u30aa\u30d7\u30b7\u30e7\u30f3", "optional"),  # オプション
        ("\u8907\u5408", "complex"),  # 複合
    ):
        if v.startswith(key):
            return name
    return None


def check_requirement(req: Requirement) -> list[Diagnostic]:
    """EARS diagnostics for one requirement (quality checks live in :mod:`.quality`)."""
    line = req.statement_line or req.line

    def diag(severity: Severity, code: str, message: str) -> Diagnostic:
        return Diagnostic(
            file=req.file,
            line=line,
            severity=severity,
            code=code,
            item=req.id,
            # A requirement not yet written to a file has no line to name.
            message=f"{req.id} (line {line}): {message}" if line else f"{req.id}: {message}",
        )

    if not req.statement.strip():
        where = (
            "its table row has no statement cell; add a column such as 'EARS' or '要件'"
            if req.source_form == "row"
            else "expected '**EARS Statement**:' or a sentence with SHALL (or "
            "しなければならない) under the heading"
        )
        return [diag(Severity.ERROR, "ears.missing", f"no EARS statement; {where}")]
    result = classify(req.statement)
    out = [diag(sev, code, msg) for sev, code, msg in result.problems]
    declared = declared_pattern(req.pattern)
    if declared and result.pattern and declared != result.pattern:
        out.append(
            diag(
                Severity.WARNING,
                "ears.pattern-mismatch",
                f"declares pattern {req.pattern!r} but the statement is {result.pattern}",
            )
        )
    return out
