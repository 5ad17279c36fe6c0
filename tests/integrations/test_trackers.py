"""Each tracker against its fake: the contract suite (built through the kind, as a
configured integration is), and vendor-specific refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from musubi.egress.policy import EgressRules
from musubi.errors import InvalidInput
from musubi.gateway.secrets import SecretBox
from musubi.integrations.azure_devops import AzureBoardsTracker
from musubi.integrations.github import GitHubTracker
from musubi.integrations.gitlab import GitLabTracker
from musubi.integrations.jira import JiraTracker
from musubi.integrations.models import Integration
from musubi.integrations.service import open_tracker
from musubi.integrations.tracker import (
    TRACKERS,
    IssueDraft,
    RateLimiter,
    Tracker,
    TrackerRefused,
    tracker_class,
)
from musubi.testing import check_entry_point
from tests.integrations.contract import run_contract
from tests.integrations.fakes import FakeAzureBoards, FakeGitHub, FakeGitLab, FakeJira


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


def jira_tracker(client: httpx.AsyncClient, fake: FakeJira, **kw: Any) -> JiraTracker:
    return JiraTracker(
        client, base_url=fake.url, project_key="PROJ", token=fake.token, email=fake.email, **kw
    )


def github_tracker(client: httpx.AsyncClient, fake: FakeGitHub) -> GitHubTracker:
    return GitHubTracker(client, base_url=fake.url, repository=fake.repository, token=fake.token)


def gitlab_tracker(client: httpx.AsyncClient, fake: FakeGitLab) -> GitLabTracker:
    return GitLabTracker(client, base_url=fake.url, project=fake.project, token=fake.token)


def ado_tracker(client: httpx.AsyncClient, fake: FakeAzureBoards) -> AzureBoardsTracker:
    return AzureBoardsTracker(
        client, base_url=f"{fake.url}/{fake.org}", project=fake.project, token=fake.token
    )


def configured(vendor: str, fake: Any) -> dict[str, Any]:
    """What an integration of ``vendor`` holds to reach ``fake``."""
    if vendor == "jira":
        return {
            "base_url": fake.url,
            "target": "PROJ",
            "secret": {"token": fake.token, "email": fake.email},
        }
    if vendor == "azure_devops":
        return {
            "base_url": f"{fake.url}/{fake.org}",
            "target": fake.project,
            "secret": {"token": fake.token},
        }
    target = fake.repository if vendor == "github" else fake.project
    return {"base_url": fake.url, "target": target, "secret": {"token": fake.token}}


@pytest.mark.parametrize("vendor", ["jira", "github", "gitlab", "azure_devops"])
async def test_contract(
    vendor: str, client: httpx.AsyncClient, request: pytest.FixtureRequest
) -> None:
    fake = request.getfixturevalue(vendor)
    check_entry_point(TRACKERS, vendor, "musubi-platform")
    cls = tracker_class(vendor)
    tracker = cls.from_config(
        client, options={}, limiter=RateLimiter(0), **configured(vendor, fake)
    )
    assert isinstance(tracker, Tracker) and cls.vendor == vendor
    await run_contract(tracker, fake)


@pytest.mark.parametrize(
    ("vendor", "target"),
    [("jira", "PRO J"), ("github", "no-slash"), ("gitlab", "/abs"), ("azure_devops", " ")],
)
def test_each_tracker_checks_its_own_target(vendor: str, target: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        tracker_class(vendor).check_target(target)
    assert refused.value.field == "target"


async def test_opening_rechecks_the_egress_policy_and_the_install(tmp_path: Path) -> None:
    """An integration saved when its URL was allowed, opened after the operator narrowed
    the policy, or after its plugin was uninstalled: a refusal (parked), not a crash."""
    box = SecretBox.load(tmp_path)
    row = Integration(
        kind="github",
        base_url="http://127.0.0.1:9",
        target="a/b",
        options={},
        secret=box.seal({"token": "t"}),
    )
    await open_tracker(row, box, EgressRules.parse("127.0.0.1").for_tenant("t1")).aclose()
    with pytest.raises(TrackerRefused, match="egress policy"):
        open_tracker(row, box, EgressRules.parse("").for_tenant("t1"))
    row.kind = "uninstalled"
    with pytest.raises(TrackerRefused, match="unknown trackers implementation 'uninstalled'"):
        open_tracker(row, box, EgressRules.parse("127.0.0.1").for_tenant("t1"))


def test_an_unknown_tracker_lists_the_installed_ones() -> None:
    with pytest.raises(InvalidInput) as refused:
        tracker_class("redmine")
    assert "jira" in refused.value.message and "azure_devops" in refused.value.message


async def test_jira_names_a_required_field_it_refuses(
    jira: FakeJira, client: httpx.AsyncClient
) -> None:
    jira.faults.required_field = "customfield_10010"
    with pytest.raises(TrackerRefused) as refused:
        await jira_tracker(client, jira).create_issue(IssueDraft("REQ-1", "t", "b"))
    assert refused.value.field == "customfield_10010"
    assert "customfield_10010" in refused.value.message


async def test_a_revoked_token_is_a_clear_refusal(
    github: FakeGitHub, client: httpx.AsyncClient
) -> None:
    tracker = github_tracker(client, github)
    github.token = "rotated-on-github"  # the token MUSUBI holds is revoked
    with pytest.raises(TrackerRefused) as refused:
        await tracker.find_issue("REQ-1")
    assert refused.value.status == 401 and "token" in refused.value.message


async def test_the_fake_refuses_a_request_that_breaks_the_description(
    jira: FakeJira, client: httpx.AsyncClient
) -> None:
    """The validation is real: a create without ``fields`` breaks JIRA's schema."""
    r = await client.post(
        f"{jira.url}/rest/api/3/issue",
        json={"update": "not-an-object"},
        headers={"Authorization": f"Bearer {jira.token}"},
    )
    assert r.status_code == 400 and jira.violations
