"""``example_glossary``: an orchestrator step that writes a glossary for a feature idea.

A step is a prompt, an output contract and a validator; the orchestrator does the rest
(estimate, calls through the tenant's gateway, repairs with the validator's messages,
approvals, events, the write). Run it alone: ``{"steps": ["example_glossary"], "idea": …}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from musubi.orchestrator.steps import Step, StepInput
from musubi.sdd.diagnostics import Diagnostic, Severity

TEMPLATE = """Write a glossary for this feature:

{idea}

Answer with Markdown only: one `## <term>` section per term, each with a one-line
definition.
"""


class GlossaryStep(Step):
    name: ClassVar[str] = "example_glossary"
    task: ClassVar[str] = "requirements"  # routed like the requirements step
    folder: ClassVar[str] = "glossary"  # writes storage/glossary/<feature>-example_glossary.md
    output_tokens: ClassVar[int] = 600

    def template(self, root: Path | None) -> str:
        return TEMPLATE  # a plugin's prompt lives in the plugin

    def values(self, inp: StepInput) -> dict[str, str]:
        return {"idea": inp.idea}

    def validate(self, text: str, inp: StepInput) -> list[Diagnostic]:
        terms = [line for line in text.splitlines() if line.startswith("## ")]
        if terms:
            return []
        message = "no term: write one '## <term>' section per term"
        return [
            Diagnostic(
                file=self.path(inp.feature),
                code="glossary.empty",
                message=message,
                severity=Severity.ERROR,
            )
        ]
