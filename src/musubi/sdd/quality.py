"""Quality checks on requirements beyond EARS grammar.

- vague terms ("fast", "user-friendly", "as appropriate") that no test can check;
- untestable or non-committal wording ("should", "may", "etc.", "TBD", "100% of the time");
- missing or empty acceptance criteria.

Japanese statements are checked against Japanese counterparts (適切, 迅速, 直感的, べき, 未定…).

Each finding names the requirement, the line and the words at fault, and suggests a fix.
"""

from __future__ import annotations

import re

from musubi.sdd.diagnostics import Diagnostic, Severity
from musubi.sdd.ears import check_requirement
from musubi.sdd.requirements import Requirement

__all__ = ["UNTESTABLE", "VAGUE_TERMS", "check_quality", "validate_requirements"]

VAGUE_TERMS = (
    "fast",
    "quick",
    "quickly",
    "rapid",
    "rapidly",
    "slow",
    "user-friendly",
    "user friendly",
    "easy",
    "easily",
    "easy to use",
    "simple",
    "simply",
    "intuitive",
    "intuitively",
    "as appropriate",
    "as needed",
    "as required",
    "as necessary",
    "if possible",
    "where possible",
    "when possible",
    "appropriate",
    "adequate",
    "adequately",
    "sufficient",
    "efficient",
    "efficiently",
    "flexible",
    "robust",
    "seamless",
    "seamlessly",
    "reasonable",
    "reasonably",
    "normal",
    "normally",
    "state-of-the-art",
    "high performance",
    "high-performance",
    "minimal",
    "optimal",
    "optimized",
    "better",
    "best",
    "modern",
    "scalable",
    "responsive",
    "secure",
    "securely",
    "reliable",
    "several",
    "some",
    "many",
    "a few",
    "various",
    "large",
    "small",
    "significant",
    "significantly",
    "approximately",
    "about",
    "etc",
    "and/or",
    "user experience",
    "timely",
    "in a timely manner",
)
# Japanese counterparts, matched as substrings (Japanese has no spaces between words).
JA_VAGUE_TERMS = (
    "\u9069\u5207",  # 適切 appropriate
    "\u8fc5\u901f",  # 迅速 quick
    "\u9ad8\u901f",  # 高速 fast
    "\u7c21\u5358",  # 簡単 simple
    "\u5bb9\u6613",  # 容易 easy
    "\u76f4\u611f\u7684",  # 直感的 intuitive
    "\u67d4\u8edf",  # 柔軟 flexible
    "\u5341\u5206\u306a",  # 十分な sufficient
    "\u52b9\u7387\u7684",  # 効率的 efficient
    "\u53ef\u80fd\u306a\u9650\u308a",  # 可能な限り as far as possible
    "\u3067\u304d\u308b\u3060\u3051",  # できるだけ as much as possible
    "\u5fc5\u8981\u306b\u5fdc\u3058\u3066",  # 必要に応じて as needed
    "\u6700\u9069",  # 最適 optimal
    "\u30e6\u30fc\u30b6\u30fc\u30d5\u30ec\u30f3\u30c9\u30ea\u30fc",  # user-friendly
    "\u30b7\u30fc\u30e0\u30ec\u30b9",  # シームレス seamless
    "\u9ad8\u6027\u80fd",  # 高性能 high performance
    "\u3044\u304f\u3064\u304b",  # いくつか several
    "\u69d8\u3005\u306a",  # 様々な various
    "\u306a\u3069",  # など etc.
)
JA_UNTESTABLE = {
    "\u3079\u304d": "non-binding 'べき' (should); use しなければならない",
    "\u671b\u307e\u3057\u3044": "non-binding '望ましい' (desirable); use しなければならない",
    "\u672a\u5b9a": "'未定' (undecided) left in the text",
    "\u691c\u8a0e\u4e2d": "'検討中' (under consideration) left in the text",
    "\u5e38\u306b": "'常に' (always) is not testable; name the conditions",
}
UNTESTABLE = {
    "should": "non-binding 'should'; use SHALL for a requirement",
    "may": "optional 'may'; state when the behaviour applies (WHERE …)",
    "might": "speculative 'might'",
    "could": "speculative 'could'",
    "tbd": "'TBD' left in the text",
    "tbc": "'TBC' left in the text",
    "to be determined": "'to be determined' left in the text",
    "100%": "'100%' cannot be demonstrated by a finite test; state a measurable bound",
    "always": "'always' is not testable; name the conditions",
    "never": "'never' is not testable; name the conditions (or use IF … THEN)",
    "all possible": "'all possible' is unbounded",
    "including but not limited to": "open-ended list",
    "support": "'support' does not say what the system does; name the observable behaviour",
}


# Terms that are vague only in some uses: "about 5 s" (not "asks about"), "a large file"
# (not "Large Language Model").
_ONLY_WHEN = {
    "about": r"about\s+[~\d]",
    "approximately": r"approximately",
    "large": r"large(?!\s+language)",
    "small": r"small(?!\s+language)",
}


def _find(text: str, term: str) -> bool:
    body = _ONLY_WHEN.get(term, re.escape(term))
    return re.search(rf"(?<![\w-]){body}(?![\w-])", text, re.IGNORECASE) is not None


def check_quality(req: Requirement, *, require_criteria: bool = True) -> list[Diagnostic]:
    line = req.statement_line or req.line
    out: list[Diagnostic] = []

    def diag(severity: Severity, code: str, message: str, at: int | None = None) -> None:
        at = at or line
        out.append(
            Diagnostic(
                file=req.file,
                line=at,
                severity=severity,
                code=code,
                item=req.id,
                message=f"{req.id} (line {at}): {message}",
            )
        )

    text = req.statement
    vague = [t for t in VAGUE_TERMS if _find(text, t)]
    # Keep only the longest overlapping terms ("easy to use" over "easy").
    vague = [t for t in vague if not any(t != o and t in o for o in vague)]
    for term in vague:
        diag(
            Severity.WARNING,
            "quality.vague",
            f"vague term {term!r}; state a measurable criterion (e.g. 'within 200 ms', "
            "'in at most 3 steps')",
        )
    for term in JA_VAGUE_TERMS:
        if term in text:
            diag(
                Severity.WARNING,
                "quality.vague",
                f"vague term {term!r}; state a measurable criterion (e.g. '200ms以内', "
                "'3操作以内')",
            )
    for term, why in JA_UNTESTABLE.items():
        if term in text:
            diag(Severity.WARNING, "quality.untestable", f"untestable wording: {why}")
    for term, why in UNTESTABLE.items():
        if _find(text, term):
            sev = Severity.ERROR if term in ("tbd", "tbc", "to be determined") else Severity.WARNING
            diag(sev, "quality.untestable", f"untestable wording: {why}")
    if not req.acceptance_criteria:
        diag(
            Severity.WARNING if require_criteria else Severity.INFO,
            "quality.no-criteria",
            "no acceptance criteria; add '**Acceptance Criteria**:' with observable outcomes",
            req.line,
        )
    for criterion in req.acceptance_criteria:
        for term in VAGUE_TERMS:
            if _find(criterion, term) and len(term) > 4:
                diag(
                    Severity.INFO,
                    "quality.vague-criterion",
                    f"acceptance criterion {criterion[:60]!r} uses vague term {term!r}",
                    req.line,
                )
                break
    return out


def validate_requirements(
    reqs: list[Requirement], *, require_criteria: bool = True
) -> list[Diagnostic]:
    """EARS and quality diagnostics for every requirement, in file order."""
    out: list[Diagnostic] = []
    for req in reqs:
        out += check_requirement(req)
        out += check_quality(req, require_criteria=require_criteria)
    return out
