"""EARS in Japanese: the five patterns' standard forms, and English keywords in Japanese text.

=============  =================================================================
ubiquitous     <システム>は、<応答>しなければならない
event-driven   <トリガー>とき、<システム>は<応答>しなければならない (時、際、たら、も)
state-driven   <状態>の間、<システム>は<応答>しなければならない (間は、も)
unwanted       もし<条件>ならば、<システム>は<応答>しなければならない (もし…場合、も)
optional       <機能>の場合、<システム>は<応答>しなければならない
=============  =================================================================

MUSUBI users also mix the two languages: ``WHEN ユーザーが…した時、システムは…を追加SHALL。``
or ``IF …場合、THEN システムは…SHALL``. An English keyword at the start of the statement
names the pattern; ``SHALL`` anywhere counts as the obligation. Instead of SHALL a statement
may end in ``しなければならない``, ``なければならない``, ``ものとする``, ``すること``,
``してはならない`` or ``できなければならない``.

In Japanese the response comes before the obligation, so the response is what stands between
``<システム>は`` and ``しなければならない`` (or ``SHALL``).
"""

from __future__ import annotations

import re

from musubi.sdd.diagnostics import Severity

__all__ = ["OBLIGATION", "classify_ja", "is_japanese"]

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
OBLIGATION = re.compile(
    r"(?<![A-Za-z])SHALL(?:\s+NOT)?(?![A-Za-z])|"
    r"(?:でき|し|さ)?なければならない|してはならない|ものとする|(?:する|できる)こと(?=[。.]?$)",
    re.IGNORECASE,
)
_WEAK = re.compile(r"(する|できる|される|したい|が望ましい|べき|予定|可能)[。.]?$")
_EN_KEYWORD = re.compile(r"^(WHEN|WHILE|IF|WHERE)\b", re.IGNORECASE)
_EN_PATTERN = {
    "WHEN": "event-driven",
    "WHILE": "state-driven",
    "IF": "unwanted",
    "WHERE": "optional",
}
# (pattern, clause ending) in the order they are tried; the clause runs up to its ending.
_JA_CLAUSES = (
    ("unwanted", re.compile(r"^もし(?P<c>.*?)(?:ならば|なら|場合(?:には|は)?)[、,]")),
    ("state-driven", re.compile(r"^(?P<c>.+?)(?:の間|している間|間)(?:は|に)?[、,]")),
    ("event-driven", re.compile(r"^(?P<c>.+?)(?:とき|時|際|たら)(?:は|に)?[、,]")),
    ("optional", re.compile(r"^(?P<c>.+?)(?:の場合|場合)(?:は|には)?[、,]")),
)
_SUBJECT = re.compile(r"^(?P<s>[^、。,]{1,40}?)(?:は|が)[、,]?\s*")
_THEN = re.compile(r"^THEN\b[、,]?\s*", re.IGNORECASE)

Problem = tuple[Severity, str, str]


_QUOTED = re.compile(r'"[^"]*"|\u300c[^\u300d]*\u300d|\([^)]*\)|\uff08[^\uff09]*\uff09')


def is_japanese(text: str) -> bool:
    """Japanese outside quotes and parentheses: ``The system SHALL … ("大規模言語モデル")`` is
    English."""
    return _CJK.search(_QUOTED.sub("", text)) is not None


def _label(pattern: str) -> str:
    return f"{pattern} requirement" if pattern != "unwanted" else "unwanted-behaviour requirement"


def classify_ja(
    text: str,
) -> tuple[str | None, list[tuple[str, str]], str, str, list[Problem]]:
    """(pattern, clauses, system, response, problems) of a Japanese or mixed statement."""
    text = re.sub(r"\*\*|`", "", text).strip()
    # "正規表現ベース表記揺れ統一: システムは…": a name before the statement.
    text = re.sub(r"^[^:\uff1a\u3002\u3001]{1,40}[:\uff1a]\s*(?=\S+?(?:は|が))", "", text)
    problems: list[Problem] = []
    duty = None
    for m in OBLIGATION.finditer(text):
        duty = m
    if duty is None:
        weak = _WEAK.search(text)
        hint = f" (ends in {weak[1]!r}, which does not oblige)" if weak else ""
        problems.append(
            (
                Severity.ERROR,
                "ears.no-shall",
                f"statement has no obligation{hint}; expected '…<システム>は<応答>"
                "しなければならない' or SHALL",
            )
        )
        return None, [], "", "", problems
    head = text[: duty.start()].strip()
    clauses: list[tuple[str, str]] = []
    kinds: list[str] = []
    rest = head
    while True:
        en = _EN_KEYWORD.match(rest)
        if en:
            kw = en[1].upper()
            body = rest[en.end() :]
            cut = re.search(r"[、,]\s*(?:THEN\b[、,]?\s*)?", body)
            clause, rest = (body[: cut.start()], body[cut.end() :]) if cut else (body, "")
            clauses.append((kw, clause.strip()))
            kinds.append(_EN_PATTERN[kw])
            continue
        # The clause that ends first: "…の場合、…の間、" is optional, then state-driven.
        # The subject's own は ("システムは、") is not a clause.
        candidates = [
            (found.end(), rank, pattern, found["c"].strip())
            for rank, (pattern, rx) in enumerate(_JA_CLAUSES)
            if (found := rx.match(rest)) and not _SUBJECT.fullmatch(rest[: found.end()])
        ]
        if not candidates:
            break
        end, _rank, pattern, clause = min(candidates)
        clauses.append((pattern, clause))
        kinds.append(pattern)
        rest = rest[end:].lstrip()
    rest = _THEN.sub("", rest.strip())
    kinds_seen = list(dict.fromkeys(kinds))
    pattern = "ubiquitous" if not kinds_seen else kinds_seen[0]
    if len(kinds_seen) > 1:
        pattern = "complex"
    label = _label(pattern)
    for kind, clause in clauses:
        if not clause:
            problems.append(
                (Severity.ERROR, "ears.empty-clause", f"{label} has an empty {kind} clause")
            )
        elif kind == "WHILE" and re.search("(?:\u6642|\u3068\u304d)$", clause):
            problems.append(
                (
                    Severity.WARNING,
                    "ears.mixed-clause",
                    f"WHILE clause {clause!r} ends in a trigger (時/とき); a state reads "
                    "'…の間' (WHILE), a trigger 'WHEN …時'",
                )
            )
    subject = _SUBJECT.match(rest)
    system = subject["s"].strip() if subject else ""
    response = rest[subject.end() :] if subject else rest
    response = response.strip(" 、,。.:\uff1a")
    after = text[duty.end() :].strip(" 。.:\uff1a")
    if not response and after and duty[0].upper().startswith("SHALL"):
        response = after  # "システムは SHALL …" written in English order
    if not system:
        problems.append(
            (
                Severity.ERROR,
                "ears.no-system",
                f"{label} has no system before its response "
                "(expected '<システム>は、…しなければならない')",
            )
        )
    if not response:
        problems.append(
            (Severity.ERROR, "ears.no-response", f"{label} has no response before the obligation")
        )
    if len(OBLIGATION.findall(text)) + len(re.findall("なければならず", text)) > 1:
        problems.append(
            (
                Severity.WARNING,
                "ears.compound",
                f"{label} states more than one obligation; one response per requirement",
            )
        )
    return pattern, clauses, system, response, problems
