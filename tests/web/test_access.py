"""Who may see and do what: the page -> permission table derived from the route table,
a viewer refused admin pages and actions with the permission named, a forged CSRF token
refused, another tenant's ids answer 404, a form error shown on its field."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from musubi.api.app import api_routes, create_app
from musubi.api.deps import declared_permission, declared_scope
from musubi.settings import Settings
from musubi.web.auth import PageRequire
from tests.web.conftest import OWNER_KEY, Dash
from tests.web.helpers import login

pytestmark = pytest.mark.slow  # a real browser


def test_each_page_holds_the_permission_of_its_api_route() -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite://"))
    table = {}
    for route in api_routes(app.routes):
        for dep in route.dependant.dependencies:
            if dep.call and declared_permission(dep.call)[0]:
                for method in route.methods:
                    table[f"{method} {route.path}"] = (
                        declared_permission(dep.call)[1],
                        declared_scope(dep.call),
                    )
    assert len(PageRequire.pages) >= 10
    for p in PageRequire.pages:
        assert (p.permission, p.scope) == table[p.backing], p.backing
    by_backing = {p.backing: p.permission for p in PageRequire.pages}
    assert by_backing["POST /v1/users"] == "users:write"  # the admin page
    assert by_backing["POST /v1/runs/{run_id}/approve"] == "runs:write"


def test_viewer_cannot_reach_admin_pages_or_actions(page: Page, dash: Dash) -> None:
    login(page, dash.base_url, dash.keys["viewer"], landing="/ui/projects")
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    expect(page.get_by_role("link", name="Audit")).to_have_count(0)
    r = page.goto(dash.base_url + "/ui/admin")
    assert r is not None and r.status == 403
    expect(page.get_by_test_id("denied")).to_contain_text("users:write")
    r = page.goto(dash.base_url + "/ui/audit")
    assert r is not None and r.status == 403
    expect(page.get_by_test_id("denied")).to_contain_text("audit:read")
    # The action, posted with the right CSRF token, is refused all the same.
    status = page.evaluate(
        """async () => (await fetch('/ui/admin/teams', {method: 'POST',
             headers: {'X-CSRF-Token': document.cookie.match(/musubi_csrf=([^;]+)/)[1],
                       'Content-Type': 'application/x-www-form-urlencoded'},
             body: 'name=viewers-team'})).status"""
    )
    assert status == 403
    with dash.client() as owner:
        names = [t["name"] for t in owner.get("/v1/teams").json()["items"]]
    assert "viewers-team" not in names


def test_forged_csrf_refused_and_form_errors_on_their_field(page: Page, dash: Dash) -> None:
    login(page, dash.base_url, OWNER_KEY, landing="/ui/admin")
    post = """async ([token]) => {
        const r = await fetch('/ui/admin/teams', {method: 'POST',
            headers: token ? {'X-CSRF-Token': token, 'Content-Type':
              'application/x-www-form-urlencoded'} : {'Content-Type':
              'application/x-www-form-urlencoded'},
            body: 'name=forged-team'});
        return [r.status, await r.text()];
    }"""
    for token in ("forged-token", None):
        status, text = page.evaluate(post, [token])
        assert status == 403 and "CSRF check failed" in text
    with dash.client() as owner:
        names = [t["name"] for t in owner.get("/v1/teams").json()["items"]]
    assert "forged-team" not in names
    # A duplicate name: the API's message, on the name field.
    page.get_by_label("Name").fill("core")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_test_id("error-name")).to_contain_text("core")
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Name").fill("platform")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_test_id("created")).to_contain_text("platform")


def test_another_tenants_ids_answer_404(page: Page, dash: Dash) -> None:
    login(page, dash.base_url, dash.keys["other"], landing="/ui/projects")
    expect(page.get_by_test_id("projects-table")).not_to_contain_text("demo")
    r = page.goto(f"{dash.base_url}/ui/projects/{dash.ids['project_demo']}")
    assert r is not None and r.status == 404
    r = page.goto(f"{dash.base_url}/ui/runs/run_0000000000000000")
    assert r is not None and r.status == 404
