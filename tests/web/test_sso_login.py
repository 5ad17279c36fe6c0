"""Log in through the tenant's OIDC provider (the SSO tests' panva/oidc-provider)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.sso.browser import oidc_provider
from tests.web.conftest import Dash, ok

ACCOUNTS = {
    "alice": {"email": "alice@example.com", "preferred_username": "alice", "groups": ["admins"]}
}


pytestmark = pytest.mark.slow  # a real browser


def test_login_through_oidc_lands_on_the_remembered_page(
    page: Page, dash: Dash, tmp_path: Path
) -> None:
    callback = f"{dash.base_url}/v1/sso/{dash.tenant_id}/oidc/callback"
    client = {"client_id": "musubi", "client_secret": "s3cret-s3cret", "redirect_uris": [callback]}
    provider = oidc_provider([client], ACCOUNTS, tmp_path / "idp.log")
    issuer = dash.loop.run(provider.__aenter__())
    try:
        with dash.client() as owner:
            body = {
                "name": "corp",
                "issuer": issuer,
                "client_id": "musubi",
                "client_secret": "s3cret-s3cret",
                "scopes": ["email", "profile", "groups"],
                "mapping": {"groups_claim": "groups", "default_role": "viewer"},
            }
            idp = ok(owner.post("/v1/sso/idps", json=body), 201)
        page.goto(f"{dash.base_url}/ui/projects")
        expect(page.get_by_role("heading", name="Log in to MUSUBI")).to_be_visible()
        page.get_by_label("Tenant (name or id)").fill(dash.tenant_id)
        page.get_by_role("button", name="Find my sign-on").click()
        page.get_by_test_id("sso-start").click()
        # panva/oidc-provider's own login and consent pages
        page.locator("input[name=login]").fill("alice")
        page.locator("input[name=password]").fill("any")
        page.locator("button[type=submit]").click()
        page.locator("button[type=submit]").click()  # consent
        page.wait_for_url(f"{dash.base_url}/ui/projects")
        expect(page.get_by_test_id("projects-table")).to_contain_text("demo")
        expect(page.locator(".who")).to_contain_text("session:")
    finally:
        with dash.client() as owner:
            owner.delete(f"/v1/sso/idps/{idp['id']}")
        dash.loop.run(provider.__aexit__(None, None, None))
