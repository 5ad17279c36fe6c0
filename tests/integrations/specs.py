"""A small SDD project on disk for the sync tests."""

from __future__ import annotations

from pathlib import Path

REQUIREMENTS = """# Requirements: auth

### REQ-AUTH-001: Login

**Priority**: P0
**Status**: Draft

**EARS Statement**:
```
When a user submits valid credentials, the system shall start a session.
```

**Acceptance Criteria**:
- [ ] a session cookie is set

### REQ-AUTH-002: Logout

**Priority**: P1
**Status**: Draft

**EARS Statement**:
```
When a user logs out, the system shall end the session.
```
"""


def write_project(root: Path, n: int = 0) -> Path:
    """The two requirements above, or ``n`` generated ones."""
    specs = root / "storage" / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    (root / "steering").mkdir(exist_ok=True)
    text = REQUIREMENTS
    if n:
        blocks = [
            f"### REQ-BULK-{i:03d}: Item {i}\n\n**Status**: Draft  \n\n**EARS Statement**:\n"
            f"```\nThe system shall do thing {i}.\n```\n"
            for i in range(1, n + 1)
        ]
        text = "# Requirements: bulk\n\n" + "\n".join(blocks)
    path = specs / ("bulk-requirements.md" if n else "auth-requirements.md")
    path.write_text(text)
    return path
