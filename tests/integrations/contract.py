"""The ``Tracker`` contract, run on the built-ins: :func:`musubi.testing.check_tracker`
(the check a plugin's tracker runs on itself) against each vendor's fake.

:class:`FakeSide` is the vendor's side of the check: it reads what the fake holds and
injects faults, and its ``violations`` are the requests that broke the vendor's API
description, which must stay empty.
"""

from __future__ import annotations

from typing import Any

from musubi.integrations.tracker import Tracker
from musubi.testing import check_tracker


class FakeSide:
    def __init__(self, fake: Any) -> None:
        self.fake = fake

    @property
    def violations(self) -> list[Any]:
        return list(self.fake.violations)

    def labelled(self, label: str) -> int:
        return len(self.fake.by_label(label))

    def issue(self, key: str) -> tuple[str, bool]:
        if self.fake.vendor == "jira":
            fields = self.fake.issues[key]["fields"]
            return fields["summary"], fields["status"]["statusCategory"]["key"] == "done"
        if self.fake.vendor == "azure_devops":
            fields = self.fake.items[int(key)]["fields"]
            return fields["System.Title"], fields["System.State"] == "Closed"
        issue = self.fake.issues[int(key)]  # github, gitlab
        return issue["title"], issue["state"] == "closed"

    def fail_next(self, status: int, retry_after: str | None) -> bool:
        self.fake.faults.statuses = [status]
        if retry_after is not None:
            self.fake.faults.retry_after = retry_after
        return True


async def run_contract(tracker: Tracker, fake: Any) -> None:
    missing = "NOPE-404" if fake.vendor == "jira" else "404"
    await check_tracker(tracker, FakeSide(fake), missing_key=missing)
