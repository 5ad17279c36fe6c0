"""The ``Tracker`` contract: what every tracker does, checked against its fake.

A tracker's test module builds ``(tracker, fake)`` pairs and calls :func:`run_contract`;
every step asserts what the tracker returns *and* what the fake (the vendor's side) now
holds, and that the fake found no request breaking the vendor's API description.
"""

from __future__ import annotations

from typing import Any

import pytest

from musubi.integrations.tracker import (
    IssueDraft,
    Tracker,
    TrackerRateLimited,
    TrackerRefused,
    TrackerUnavailable,
    label_for,
)


def _remote(fake: Any, key: str) -> dict[str, Any]:
    """(title, closed) of an issue as the fake holds it."""
    if fake.vendor == "jira":
        issue = fake.issues[key]["fields"]
        return {
            "title": issue["summary"],
            "closed": issue["status"]["statusCategory"]["key"] == "done",
        }
    if fake.vendor == "azure_devops":
        fields = fake.items[int(key)]["fields"]
        return {"title": fields["System.Title"], "closed": fields["System.State"] == "Closed"}
    issue = fake.issues[int(key)]
    return {"title": issue["title"], "closed": issue["state"] == "closed"}  # github, gitlab


async def run_contract(tracker: Tracker, fake: Any) -> None:
    draft = IssueDraft("REQ-C-001", "REQ-C-001: Login", "The system shall log users in.")
    assert await tracker.find_issue("REQ-C-001") is None

    created = await tracker.create_issue(draft)
    assert created.item_id == "REQ-C-001"
    assert len(fake.by_label(label_for("REQ-C-001"))) == 1

    read = await tracker.get_issue(created.key)
    assert (read.title, read.body, read.closed) == (draft.title, draft.body, False)
    found = await tracker.find_issue("REQ-C-001")
    assert found is not None and found.key == created.key

    edited = IssueDraft(draft.item_id, "REQ-C-001: Log in", draft.body)
    updated = await tracker.update_issue(read, edited)
    assert updated.title == "REQ-C-001: Log in"
    assert _remote(fake, created.key) == {"title": "REQ-C-001: Log in", "closed": False}

    closed = await tracker.close_issue(await tracker.get_issue(created.key))
    assert closed.closed and _remote(fake, created.key)["closed"]
    reopened = await tracker.update_issue(await tracker.get_issue(created.key), edited)
    assert not reopened.closed and not _remote(fake, created.key)["closed"]

    # a closed item created in one go is created closed
    born_closed = await tracker.create_issue(IssueDraft("REQ-C-002", "t", "b", closed=True))
    assert _remote(fake, born_closed.key)["closed"]

    # errors at the boundary
    fake.faults.statuses = [503]
    with pytest.raises(TrackerUnavailable):
        await tracker.get_issue(created.key)
    fake.faults.statuses, fake.faults.retry_after = [429], "7"
    with pytest.raises(TrackerRateLimited) as limited:
        await tracker.get_issue(created.key)
    assert limited.value.retry_after == 7.0
    tracker.limiter.pause(-7.0)  # give the tokens back: the test does not wait
    with pytest.raises(TrackerRefused):
        await tracker.get_issue("NOPE-404" if fake.vendor == "jira" else "404")
    assert fake.violations == []
