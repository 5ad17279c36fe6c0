"""Secrets never move to a new destination without being given again: replacing a tracker's
or a pipeline's configuration with another ``base_url`` and no token is refused, naming the
field, and the stored token never reaches the new host (an attacker with
``integrations:write`` on one project pointing it at a server of theirs)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.helpers import ok
from tests.conftest import Api
from tests.integrations.ci_fakes import FakeGitLabCI
from tests.integrations.fakes import FakeJira
from tests.integrations.test_pipelines import body_for, new_project
from tests.integrations.test_roundtrip import configure, project_with_specs


@pytest.fixture
def gitlab_ci() -> Iterator[FakeGitLabCI]:
    with FakeGitLabCI().serve() as fake:
        yield fake  # type: ignore[misc]


async def test_a_tracker_moved_elsewhere_needs_its_token_again(
    api: Api, owner: httpx.AsyncClient, jira: FakeJira
) -> None:
    project_id, _ = await project_with_specs(api, owner)
    await configure(owner, project_id, jira)
    url = f"/v1/projects/{project_id}/integrations/jira"
    with FakeJira().serve() as thief:
        moved = await owner.put(url, json={"target": "PROJ", "base_url": thief.url})
        assert moved.status_code == 422, moved.text
        error = moved.json()["error"]
        assert error["field"] == "token" and "base_url changed" in error["message"]
        shown = ok(await owner.get(url))
        assert shown["base_url"] == jira.url  # nothing changed
        again = ok(await owner.put(url, json={"target": "PROJ", "base_url": jira.url}))
        assert again["secrets_set"] == ["email", "token", "webhook_secret"]  # same place: kept
        given = {"target": "PROJ", "base_url": thief.url, "token": "their-own", "email": "a@b"}
        out = ok(await owner.put(url, json=given))
        assert out["secrets_set"] == ["email", "token"]  # the old webhook secret did not move


async def test_a_pipeline_moved_elsewhere_needs_its_token_again(
    api: Api, owner: httpx.AsyncClient, gitlab_ci: FakeGitLabCI
) -> None:
    project_id = await new_project(owner)
    url = f"/v1/projects/{project_id}/pipelines/ci"
    ok(await owner.put(url, json=body_for(gitlab_ci)))
    with FakeGitLabCI().serve() as thief:
        body = {k: v for k, v in body_for(gitlab_ci).items() if k not in ("token", "trigger_token")}
        moved = await owner.put(url, json={**body, "base_url": thief.url})
        assert moved.status_code == 422, moved.text
        assert moved.json()["error"]["field"] == "token"
        assert ok(await owner.get(url))["base_url"] == gitlab_ci.url
        same = ok(await owner.put(url, json=body))  # same destination: secrets kept
        assert same["base_url"] == gitlab_ci.url
        ok(await owner.post(url + "/runs", json={}), 201)
        assert thief.requests == []
