"""Browser steps shared by the dashboard tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.web.conftest import AXE


def login(page: Page, base_url: str, key: str, landing: str = "/ui/") -> None:
    page.goto(f"{base_url}/ui/login?next={landing}")
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}{landing}*")


def with_axe(page: Page) -> None:
    """Load axe-core into every document of ``page`` (through the DevTools protocol, which
    the page's CSP does not govern: the dashboard itself allows no inline script)."""
    assert AXE.exists(), "tests/web/vendor/axe.min.js is missing: run scripts/vendor-web"
    page.add_init_script(path=str(AXE))


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now."""
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def shoot(page: Page, artifacts: Path, name: str) -> Path:
    path = artifacts / f"dashboard-{name}.png"
    height = min(1600, int(page.evaluate("document.documentElement.scrollHeight")))
    width = page.viewport_size["width"] if page.viewport_size else 1280
    clip = {"x": 0, "y": 0, "width": width, "height": height}
    page.screenshot(path=str(path), full_page=True, clip=clip)  # type: ignore[arg-type]
    return path


def no_csp_errors(messages: list[str]) -> None:
    bad = [m for m in messages if "Content Security Policy" in m or "Refused to" in m]
    assert not bad, json.dumps(bad, indent=1)


__all__ = ["axe_violations", "expect", "login", "no_csp_errors", "shoot", "with_axe"]
