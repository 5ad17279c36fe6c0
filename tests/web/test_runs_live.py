"""A run's page follows the run live (the API's SSE stream) and its approve button moves
the run on, with no reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.orchestrator.conftest import BAD_REQUIREMENTS
from tests.web.conftest import OWNER_KEY, Dash, ok
from tests.web.helpers import login, shoot

pytestmark = pytest.mark.slow  # a real browser


def test_run_page_updates_live_and_approve_moves_the_run_on(
    page: Page, dash: Dash, artifacts: Path
) -> None:
    login(page, dash.base_url, OWNER_KEY, landing="/ui/runs")
    with dash.client() as owner:
        body = {
            "idea": "Export orders as CSV",
            "feature": "export",
            "steps": ["requirements", "design"],
        }
        run = ok(owner.post(f"/v1/projects/{dash.ids['project_shop']}/runs", json=body), 201)
    page.goto(f"{dash.base_url}/ui/runs/{run['id']}")
    page.evaluate("window.__notReloaded = true")
    status = page.get_by_test_id("run-status")
    expect(status).to_have_text("awaiting_approval", timeout=20_000)
    expect(page.get_by_test_id("steps-table")).to_contain_text("requirements")
    shoot(page, artifacts, "run-awaiting-approval")
    page.get_by_test_id("approve").click()
    expect(status).to_have_text("succeeded", timeout=20_000)
    assert page.evaluate("window.__notReloaded") is True  # updated in place
    expect(page.get_by_test_id("steps-table")).to_contain_text("design")
    shoot(page, artifacts, "run-succeeded")
    assert dash.upstream.stages() == ["requirements", "design"]
    # Reject at the gate: the run is cancelled, the design stage never called.
    with dash.client() as owner:
        body = {"idea": "Import orders", "feature": "import", "steps": ["requirements", "design"]}
        second = ok(owner.post(f"/v1/projects/{dash.ids['project_demo']}/runs", json=body), 201)
    page.goto(f"{dash.base_url}/ui/runs/{second['id']}")
    expect(status).to_have_text("awaiting_approval", timeout=20_000)
    page.get_by_test_id("reject").click()
    expect(status).to_have_text("cancelled")
    assert dash.upstream.stages() == ["requirements", "design", "requirements"]
    page.goto(f"{dash.base_url}/ui/runs")
    expect(page.get_by_test_id("runs-table")).to_contain_text("export")
    expect(page.get_by_test_id("runs-table")).to_contain_text("cancelled")


def test_a_failed_step_shows_the_validators_messages(page: Page, dash: Dash) -> None:
    login(page, dash.base_url, OWNER_KEY, landing="/ui/runs")
    script = dash.upstream.script
    dash.upstream.script = lambda messages: BAD_REQUIREMENTS if len(messages) > 1 else "Hi."
    try:
        with dash.client() as owner:
            body = {"idea": "Refund orders", "feature": "refunds", "steps": ["requirements"]}
            run = ok(owner.post(f"/v1/projects/{dash.ids['project_shop']}/runs", json=body), 201)
        page.goto(f"{dash.base_url}/ui/runs/{run['id']}")
        expect(page.get_by_test_id("run-status")).to_have_text("failed", timeout=20_000)
    finally:
        dash.upstream.script = script
    messages = page.get_by_test_id("validator-messages")
    expect(messages).to_contain_text("ears.missing")
    expect(messages).to_contain_text("quality.no-criteria")
