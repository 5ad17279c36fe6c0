"""The plugin's own test of its tracker: MUSUBI's contract (``musubi.testing``), with the
files read directly as the tracker's side, and the egress rule for ``file://`` URLs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from musubi_example.tracker import FilesTracker

from musubi.egress.policy import EgressDenied, EgressRules
from musubi.integrations.tracker import TRACKERS, RateLimiter, tracker_class
from musubi.testing import check_entry_point, check_tracker


class Files:
    """The tracker's side: the JSON files, read without the tracker class."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _all(self) -> dict[str, dict[str, object]]:
        return {p.stem: json.loads(p.read_text()) for p in self.folder.glob("*.json")}

    def labelled(self, label: str) -> int:
        return sum(label in data["labels"] for data in self._all().values())  # type: ignore[operator]

    def issue(self, key: str) -> tuple[str, bool]:
        data = self._all()[key]
        return str(data["title"]), data["status"] == "closed"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def test_the_tracker_is_an_entry_point() -> None:
    check_entry_point(TRACKERS, "example_files", "musubi-example")
    assert tracker_class("example_files") is FilesTracker


async def test_the_tracker_keeps_the_contract(tmp_path: Path, client: httpx.AsyncClient) -> None:
    tracker = FilesTracker.from_config(
        client,
        base_url=tmp_path.as_uri(),
        target="shop",
        secret={},
        options={},
        limiter=RateLimiter(0),
    )
    await check_tracker(tracker, Files(tmp_path / "shop"))


async def test_a_status_set_by_hand_is_read_back(tmp_path: Path, client: httpx.AsyncClient) -> None:
    tracker = FilesTracker(client, folder=tmp_path)
    from musubi.integrations.tracker import IssueDraft

    issue = await tracker.create_issue(IssueDraft("REQ-1", "REQ-1: t", "b"))
    path = tmp_path / f"{issue.key}.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "status": "In Progress"}))
    again = await tracker.get_issue(issue.key)
    assert (again.status, again.closed) == ("In Progress", False)
    # an update that does not close or reopen keeps the finer status
    kept = await tracker.update_issue(again, IssueDraft("REQ-1", "REQ-1: t2", "b"))
    assert (kept.title, kept.status) == ("REQ-1: t2", "In Progress")


def test_file_urls_need_the_operators_loopback_allowance(tmp_path: Path) -> None:
    closed = EgressRules.parse("").for_tenant("t1")
    with pytest.raises(EgressDenied, match="MUSUBI_EGRESS_ALLOW"):
        FilesTracker.check_destination(tmp_path.as_uri(), closed)
    FilesTracker.check_destination(
        tmp_path.as_uri(), EgressRules.parse("localhost").for_tenant("t1")
    )
    FilesTracker.check_destination(
        tmp_path.as_uri(), EgressRules.parse("t1=127.0.0.1").for_tenant("t1")
    )
    with pytest.raises(EgressDenied):  # allowed for another tenant only
        FilesTracker.check_destination(
            tmp_path.as_uri(), EgressRules.parse("t2=localhost").for_tenant("t1")
        )
    allowed = EgressRules.parse("localhost").for_tenant("t1")
    for bad in (
        "https://example.com/x",
        "file://other-host/x",
        "file:///a/../etc",
        "file:relative",
    ):
        with pytest.raises(Exception, match="base_url"):
            FilesTracker.check_destination(bad, allowed)
