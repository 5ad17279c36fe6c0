"""Every page, logged in by key, renders the seeded data; no serious accessibility
violation; screenshots of each; an expired session comes back to the page after login."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import OWNER_KEY, Dash
from tests.web.helpers import axe_violations, login, no_csp_errors, shoot, with_axe

pytestmark = pytest.mark.slow  # a real browser


def test_every_page_renders_real_data_accessibly(page: Page, dash: Dash, artifacts: Path) -> None:
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    with_axe(page)
    login(page, dash.base_url, OWNER_KEY)
    checks = {
        "/ui/?by=team": lambda: (
            expect(page.get_by_test_id("usage-table")).to_contain_text("core"),
            expect(page.get_by_test_id("usage-table")).to_contain_text("web"),
            expect(page.locator("#usage-chart[data-drawn=true] canvas")).to_have_count(1),
            expect(page.get_by_test_id("quota-warning")).to_be_visible(),
        ),
        "/ui/?by=model": lambda: expect(page.get_by_test_id("usage-table")).to_contain_text(
            "claude-x"
        ),
        "/ui/projects": lambda: expect(page.get_by_test_id("projects-table")).to_contain_text(
            "demo"
        ),
        f"/ui/projects/{dash.ids['project_demo']}": lambda: (
            expect(page.get_by_test_id("requirements")).to_contain_text("REQ-"),
            expect(page.get_by_test_id("trace-graph")).to_contain_text("(gap)"),
        ),
        "/ui/models": lambda: (
            expect(page.get_by_test_id("breakers")).to_contain_text("closed"),
            expect(page.get_by_test_id("catalogue")).to_contain_text("gpt-4.1"),
            expect(page.get_by_test_id("cache-hit-rate")).to_contain_text("%"),
        ),
        "/ui/audit?action=team.*": lambda: expect(
            page.get_by_test_id("audit-table")
        ).to_contain_text("team.create"),
        "/ui/admin": lambda: (
            expect(page.get_by_test_id("users")).to_contain_text("vera"),
            expect(page.get_by_test_id("keys")).to_contain_text("msk_"),
            expect(page.get_by_test_id("providers")).to_contain_text("openai"),
        ),
        "/ui/runs": lambda: expect(page.get_by_test_id("runs-table")).to_be_visible(),
    }
    problems = {}
    for path, check in checks.items():
        response = page.goto(dash.base_url + path)
        assert response is not None and response.status == 200, path
        assert "default-src 'self'" in response.headers["content-security-policy"]
        check()
        name = path.strip("/").replace("/", "-").replace("?", "-").replace("=", "-") or "overview"
        shoot(page, artifacts, name.replace("*", "").replace(dash.ids["project_demo"], "demo"))
        if found := axe_violations(page):
            problems[path] = found
    assert not problems, problems
    no_csp_errors(console)

    # Verify the chain: the result is shown in place.
    page.goto(dash.base_url + "/ui/audit")
    page.get_by_test_id("verify").click()
    expect(page.get_by_test_id("verify-result")).to_contain_text("intact")


def test_expired_session_returns_to_the_page_after_login(
    page: Page, dash: Dash, artifacts: Path
) -> None:
    with_axe(page)
    login(page, dash.base_url, OWNER_KEY)
    target = f"/ui/projects/{dash.ids['project_demo']}"
    # The server revokes every session (as an admin would): the cookie no longer works.
    with dash.client() as owner:
        for s in owner.get("/v1/sso/sessions").json()["items"]:
            owner.delete(f"/v1/sso/sessions/{s['id']}")
    page.goto(dash.base_url + target)
    expect(page.get_by_role("heading", name="Log in to MUSUBI")).to_be_visible()
    assert "next=" in page.url
    page.get_by_label("API key", exact=True).fill("msk_wrong_key")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#api_key-error")).to_contain_text("invalid API key")
    shoot(page, artifacts, "login-error")
    assert not axe_violations(page)
    page.get_by_label("API key", exact=True).fill(OWNER_KEY)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(dash.base_url + target)
    expect(page.get_by_test_id("requirements")).to_be_visible()
    page.get_by_test_id("logout").click()
    page.wait_for_url(f"{dash.base_url}/ui/login*")
    page.goto(dash.base_url + "/ui/models")
    expect(page.get_by_role("heading", name="Log in to MUSUBI")).to_be_visible()
