"""Every tutorial of the documentation site, run as a reader runs it (tutorial_runner)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.tutorial_runner import Tutorial

DOCS = Path(__file__).resolve().parents[2] / "docs"
# the tutorials, and the plugin guide's walk-through
TUTORIALS = [*sorted((DOCS / "tutorials").glob("*.md")), DOCS / "plugins.md"]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_as_written(path: Path, tmp_path: Path) -> None:
    Tutorial(path, tmp_path).run()
