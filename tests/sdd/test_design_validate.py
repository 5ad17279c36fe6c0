"""``musubi design validate`` output: failures read as failures, at the place they are."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Cli = Callable[..., tuple[int, str, str]]

PAY = """# Payment Requirements

### REQ-PAY-001: Refunds

**EARS Statement**:
```
WHEN a refund is requested, the system SHALL refund the payment within 5 days.
```
"""


def test_design_validate_names_each_gap_at_its_requirement(project_root: Path, musubi: Cli) -> None:
    """Before: ``storage/design/auth-design.md:1: error: requirements covered by design: …``
    for every gap, another feature's included."""
    (project_root / "storage/specs/pay-requirements.md").write_text(PAY)
    code, out, _ = musubi("design", "validate", "-C", str(project_root))
    assert code == 1
    lines = out.splitlines()
    assert (
        "storage/specs/auth-requirements.md:73: error: "
        "REQ-AUTH-004: requirement not named in any design"
    ) in lines
    assert (
        "storage/specs/pay-requirements.md:3: error: "
        "REQ-PAY-001: requirement not named in any design"
    ) in lines
    assert "covered by design" not in out

    code, out, _ = musubi("design", "validate", "auth", "-C", str(project_root))
    assert code == 1 and "REQ-AUTH-004" in out
    assert "REQ-PAY-001" not in out, "another feature's requirement"
