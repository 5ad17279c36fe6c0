"""The documentation site builds strictly, works offline, and renders in a real browser.

Screenshots of the home page, a reference page, a tutorial and the architecture diagram go
to ``build/artifacts/docs-site/`` (kept by CI as artifacts).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.hooks import ROOT

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") and "/usr/lib/chromium/chromium"
ARTIFACTS = ROOT / "build/artifacts/docs-site"
PAGES = {
    "home": "index.html",
    "rest-reference": "reference/rest/index.html",
    "tutorial-gateway": "tutorials/gateway/index.html",
    "architecture": "architecture/index.html",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def test_every_page_loads_nothing_from_the_internet(site: Path) -> None:
    external = re.compile(r"""<(?:script|link|img|iframe)[^>]+(?:src|href)=["']?(?:https?:)?//""")
    offenders = [
        str(page.relative_to(site))
        for page in site.rglob("*.html")
        if external.search(page.read_text())
    ]
    assert offenders == []


def test_the_reference_pages_are_built(site: Path) -> None:
    rest = (site / "reference/rest/index.html").read_text()
    assert "POST /v1/chat/completions" in rest and "teams:write" in rest
    assert "musubi trace check" in (site / "reference/cli/index.html").read_text()
    assert "MUSUBI_DATABASE_URL" in (site / "reference/settings/index.html").read_text()
    assert '"openapi"' in (site / "reference/openapi.json").read_text()[:200]
    python = (site / "reference/python/index.html").read_text()
    assert "Embedder" in python and "JobQueue" in python


@pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium (apt-get install chromium)")
def test_pages_render_in_a_browser(site: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, page in PAGES.items():
        shot = ARTIFACTS / f"{name}.png"
        shot.unlink(missing_ok=True)
        browse(site / page, f"--screenshot={shot}", "--window-size=1280,900")
        assert shot.stat().st_size > 10_000, name
    dom = browse(site / PAGES["architecture"], "--dump-dom")
    assert "<svg" in dom and "flowchart" in dom, "the Mermaid diagram was not rendered"


def browse(page: Path, *args: str) -> str:
    result = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
