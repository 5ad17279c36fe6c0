"""The extension end to end in a real editor: code-server with the packaged .vsix, driven
by Playwright with Debian's chromium, against a real ``musubi serve`` and a fake model.

One editor session walks what a developer does: set the key (SecretStorage), see the
trace tree of the sample project, hover an ID, accept an inline suggestion from the fake
model, see the estimate before a run, approve the run from the editor and see it move on.
Screenshots land in ``test-artifacts/vscode/`` (CI keeps them). Needs code-server, Node 24
and chromium (``scripts/vscode-e2e-setup``); CI sets MUSUBI_REQUIRE_E2E=1 so a missing
piece fails there instead of skipping.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.vscode.editor import (
    FIM_REPLY,
    Editor,
    Server,
    code_server,
    fake_upstream,
    missing_editor,
    musubi_server,
)
from tests.vscode.helpers import CHROMIUM, REPO, build_vsix

FINISHED = ("succeeded", "failed", "cancelled")
ARTIFACTS = Path(os.environ.get("MUSUBI_TEST_ARTIFACTS", REPO / "test-artifacts")) / "vscode"

_missing = missing_editor()
if _missing and os.environ.get("MUSUBI_REQUIRE_E2E") != "1":
    pytestmark = pytest.mark.skip(reason=_missing)

if not _missing:
    from playwright.sync_api import Locator, Page, expect, sync_playwright

    expect.set_options(timeout=30_000)


pytestmark = pytest.mark.slow  # code-server in a browser


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Editor, object]]:
    assert _missing is None, _missing
    tmp = tmp_path_factory.mktemp("editor")
    vsix = build_vsix()
    with fake_upstream() as (fake, upstream), musubi_server(tmp, upstream) as server:
        settings = {"musubi.serverUrl": server.url, "musubi.project": server.project_id}
        with code_server(tmp, vsix, server.repo, settings) as editor:
            yield server, editor, fake


@pytest.fixture(scope="module")
def page(world: tuple[Server, Editor, object]) -> Iterator[Page]:
    _, editor, _ = world
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(editor.url)
        expect(page.locator(".monaco-workbench")).to_be_visible(timeout=90_000)
        yield page
        context.close()
        browser.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def command(page: Page, title: str) -> None:
    """Run a command from the palette (F1 works in headless chromium where Ctrl+P does not)."""
    page.keyboard.press("Escape")
    page.keyboard.press("F1")
    box = page.locator(".quick-input-widget input")
    expect(box).to_be_visible()
    box.fill(f">{title}")
    expect(page.get_by_role("option", name=title).first).to_be_visible()
    page.keyboard.press("Enter")


def open_file(page: Page, name: str) -> None:
    command(page, "Go to File")
    page.keyboard.type(name)
    expect(page.get_by_role("option", name=name).first).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.get_by_role("tab", name=name).first).to_be_visible()


def enter_key(page: Page, key: str) -> None:
    expect(page.get_by_text("MUSUBI API key (msk_…)")).to_be_visible()
    page.locator(".quick-input-widget input").fill(key)
    page.keyboard.press("Enter")


def go_to(page: Page, line: int, col: int) -> None:
    command(page, "Go to Line/Column")
    page.keyboard.type(f"{line}:{col}")
    page.keyboard.press("Enter")


def tree_row(page: Page, text: str | re.Pattern[str]) -> Locator:
    """A row of a tree view by its text (its accessible name is the item's tooltip)."""
    return page.locator(".monaco-list-row[role=treeitem]").filter(has_text=text).first


def test_a_developer_uses_musubi_in_the_editor(
    page: Page, world: tuple[Server, Editor, object]
) -> None:
    server, editor, fake = world

    # Without a key the status bar says suggestions are off, and why.
    off = page.get_by_text(re.compile("MUSUBI: suggestions off — no API key"))
    expect(off).to_be_visible(timeout=60_000)
    shot(page, "01-no-key")

    # A wrong key: one notification (though the trace, the runs and the spend all failed),
    # whose button is the fix.
    command(page, "MUSUBI: Set API key")
    enter_key(page, "msk_not_a_real_key")
    refused = page.locator(".notification-toast").filter(has_text="refused the API key")
    expect(refused).to_be_visible()
    expect(page.get_by_text("MUSUBI: suggestions off — wrong API key")).to_be_visible()
    shot(page, "02-wrong-key")
    assert refused.count() == 1
    refused.get_by_role("button", name="Set API key").click()

    # The right key goes into SecretStorage.
    enter_key(page, server.dev_key)
    expect(page.get_by_text(re.compile("MUSUBI: suggestions off"))).to_be_hidden()
    activation = editor.user_data / "User/globalStorage/musubi.musubi/activation.json"
    assert activation.exists(), "the extension activated and recorded its activation time"

    # The traceability view shows the sample project's links.
    page.locator('.activitybar [aria-label="MUSUBI"]').first.click()
    req = tree_row(page, "REQ-AUTH-001")
    expect(req).to_be_visible()
    req.click()
    code = tree_row(page, re.compile(r"Code\s*1$"))
    expect(code).to_be_visible()
    code.click()
    expect(tree_row(page, "src/auth/login.py:4")).to_be_visible()
    expect(tree_row(page, "REQ-AUTH-004")).to_contain_text("gap: design, code, tests")
    shot(page, "03-trace-tree")

    # Hovering an ID in code shows its requirement.
    open_file(page, "login.py")
    go_to(page, 4, 18)
    command(page, "Show or Focus Hover")
    hover = page.locator(".monaco-hover").filter(has_text="REQ-AUTH-001")
    expect(hover).to_be_visible()
    expect(hover).to_contain_text("User Login")
    expect(hover).to_contain_text("WHEN a user submits a valid email and password")
    expect(hover).to_contain_text("Links: design 1 · tasks 2 · code 1 · tests 1")
    shot(page, "04-hover")
    page.keyboard.press("Escape")

    # CodeLens above the ID; the trace gap in the Problems count; F12 goes to the requirement.
    lens = page.locator(".monaco-editor .codelens-decoration").filter(has_text="REQ-AUTH-001")
    expect(lens.first).to_contain_text("REQ-AUTH-001: User Login — design 1 · tasks 2")
    expect(page.get_by_role("button", name=re.compile(r"Warnings: 1"))).to_be_visible()
    page.keyboard.press("F12")
    expect(page.get_by_role("tab", name="auth-requirements.md").first).to_be_visible()
    open_file(page, "login.py")

    # An inline suggestion from the fake model appears and is accepted with Tab.
    go_to(page, 14, 100)
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.keyboard.type("result = ", delay=40)
    ghost = page.locator(".ghost-text-decoration, .ghost-text").first
    expect(ghost).to_be_visible()
    expect(ghost).to_contain_text(FIM_REPLY.split("(")[0])
    shot(page, "05-inline-suggestion")
    page.keyboard.press("Tab")
    lines = page.locator(".monaco-editor .view-lines").first
    expect(lines).to_contain_text(f"result = {FIM_REPLY}")
    fim = [body for kind, body, _ in fake.requests if kind == "completion"]  # type: ignore[attr-defined]
    assert fim and fim[-1]["suffix"] is not None and "result = " in fim[-1]["prompt"]
    assert fim[-1]["model"] == "gpt-4o-mini", "routed by the code-completion task"
    shot(page, "06-inline-accepted")
    page.keyboard.press("Control+z")

    # The estimate appears before the run starts.
    command(page, "MUSUBI: Start run")
    page.get_by_role("option", name="requirements, design", exact=True).click()
    expect(page.get_by_text("The feature idea")).to_be_visible()
    page.locator(".quick-input-widget input").fill("Export orders as CSV")
    page.keyboard.press("Enter")
    dialog = page.locator(".monaco-dialog-box")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(re.compile(r"requirements: [\d,]+ in \+ [\d,]+ out tokens on "))
    expect(dialog).to_contain_text(re.compile(r"design: [\d,]+ in \+ [\d,]+ out tokens on "))
    expect(dialog).to_contain_text("Total:")
    headers = {"Authorization": f"Bearer {server.dev_key}"}
    runs_url = f"{server.url}/v1/projects/{server.project_id}/runs"
    assert httpx.get(runs_url, headers=headers).json()["items"] == [], "nothing starts before"
    shot(page, "07-estimate")
    dialog.get_by_role("button", name="Start run").click()

    # The run stops at the approval gate; approving it from the editor moves it on.
    awaiting = tree_row(page, "awaiting approval")
    expect(awaiting).to_be_visible(timeout=60_000)
    (run,) = httpx.get(runs_url, headers=headers).json()["items"]
    assert run["status"] == "awaiting_approval"
    shot(page, "08-awaiting-approval")
    command(page, "MUSUBI: Approve run")
    expect(page.get_by_role("option", name=re.compile(run["feature"])).first).to_be_visible()
    page.keyboard.press("Enter")
    deadline = time.monotonic() + 60
    run_url = f"{server.url}/v1/runs/{run['id']}"
    while (shown := httpx.get(run_url, headers=headers).json())["status"] not in FINISHED:
        assert time.monotonic() < deadline, f"the approved run did not finish: {shown}"
        time.sleep(0.3)
    assert shown["status"] == "succeeded", shown
    assert [st["status"] for st in shown["steps"]] == ["done", "done"]
    expect(tree_row(page, run["feature"])).to_contain_text("succeeded")
    shot(page, "09-approved-done")

    # The status bar shows the project's spend today (the suggestion and the run cost).
    expect(page.get_by_text(re.compile(r"\$0\.\d*[1-9]\d* today"))).to_be_visible(timeout=90_000)
