"""Quality checks on requirements beyond EARS grammar.

- vague terms ("fast", "user-friendly", "as appropriate") that no test can check;
- untestable or non-committal wording ("should", "may", "etc.", "TBD", "100% of the time");
- missing or empty acceptance criteria.

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


def _find(text: str, term: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])", text, re.IGNORECASE) is not None


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
