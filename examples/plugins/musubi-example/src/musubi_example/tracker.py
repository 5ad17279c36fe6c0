"""``example_files``: an issue tracker kept as JSON files in a directory of the server.

Each project (the integration's ``target``) is a folder under the integration's
``base_url``, a ``file://`` URL: ``file:///srv/issues`` with target ``shop`` keeps issue 3
in ``/srv/issues/shop/3.json``::

    {"key": "3", "title": "REQ-001: Login", "body": "...", "status": "open",
     "labels": ["musubi-REQ-001"], "assignee": null}

Anyone may edit a file (set ``"status": "in progress"`` or ``"closed"``): MUSUBI's periodic
reconcile reads the change back, mapped through the integration's status map. There are no
webhooks. Writes are atomic (a temporary file renamed over the old one) and a new issue's
number is claimed with an exclusive create, so two writers never share one.

**The egress policy.** This tracker opens no connection, but the folder is on the server
itself, and a tenant that could name any folder could write anywhere the server can. So
:meth:`FilesTracker.check_destination` treats a ``file://`` URL as a destination on the
server's own loopback: it is refused unless the operator allows ``localhost`` (or
``127.0.0.1``) in ``MUSUBI_EGRESS_ALLOW``, for every tenant or for one, exactly as for a
self-hosted tracker on the same machine. The check runs when the integration is saved and
each time the tracker is opened.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit

from musubi.egress.policy import EgressDenied, EgressPolicy
from musubi.errors import InvalidInput
from musubi.integrations.tracker import (
    Issue,
    IssueDraft,
    RateLimiter,
    Tracker,
    TrackerRefused,
    TrackerUnavailable,
    label_for,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["FilesTracker", "folder_of"]

CLOSED = frozenset({"closed", "done"})
_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def folder_of(base_url: str) -> Path:
    """The directory a ``file://`` URL names; :class:`InvalidInput` for anything else."""
    parts = urlsplit(base_url)
    if parts.scheme.lower() != "file":
        raise InvalidInput("base_url must be a file:// URL of a directory", field="base_url")
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput("base_url: a file:// URL names no other host", field="base_url")
    path = PurePosixPath(unquote(parts.path))
    if not path.is_absolute() or ".." in path.parts:
        raise InvalidInput("base_url: an absolute path without '..'", field="base_url")
    return Path(str(path))


class FilesTracker(Tracker):
    vendor: ClassVar[str] = "example_files"
    base_url_example: ClassVar[str] = "file:///srv/issues"
    default_rate: ClassVar[float] = 0.0  # no remote service to spare
    needs_token: ClassVar[bool] = False
    target_help: ClassVar[str] = "a folder name (letters, digits, '-', '_', '.')"

    def __init__(
        self, client: httpx.AsyncClient, *, folder: Path, limiter: RateLimiter | None = None
    ) -> None:
        super().__init__(client, limiter)  # the client is unused: there is no HTTP here
        self.folder = folder

    @classmethod
    def check_target(cls, target: str) -> None:
        if not _TARGET.fullmatch(target) or target in (".", ".."):
            raise InvalidInput(f"target must be {cls.target_help}", field="target")

    @classmethod
    def check_destination(cls, base_url: str, egress: EgressPolicy) -> None:
        folder_of(base_url)
        try:  # the folder is on this server: allowed only where its loopback is
            egress.check_url("http://localhost/", field="base_url")
        except EgressDenied as exc:
            raise EgressDenied(
                "base_url: a file:// tracker writes on the server itself, which the egress "
                "policy treats as its loopback: the operator must allow 'localhost' (or "
                "127.0.0.1) in MUSUBI_EGRESS_ALLOW",
                field="base_url",
            ) from exc

    @classmethod
    def from_config(
        cls,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        target: str,
        secret: dict[str, str],
        options: dict[str, Any],
        limiter: RateLimiter,
    ) -> FilesTracker:
        cls.check_target(target)
        return cls(client, folder=folder_of(base_url) / target, limiter=limiter)

    # -- the files ---------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        if not key.isdigit():
            raise TrackerRefused(f"example_files: no issue {key!r}", status=404)
        return self.folder / f"{int(key)}.json"

    def _read(self, path: Path) -> Issue:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TrackerRefused(f"example_files: no issue {path.stem!r}", status=404) from exc
        except ValueError as exc:  # someone broke the file by hand: fix it, then retry
            raise TrackerRefused(f"example_files: {path} is not JSON: {exc}") from exc
        except OSError as exc:
            raise TrackerUnavailable(f"example_files: cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise TrackerRefused(f"example_files: {path} is not a JSON object")
        status = str(data.get("status") or "open")
        return Issue(
            key=path.stem,
            title=str(data.get("title") or ""),
            body=str(data.get("body") or ""),
            status=status,
            closed=status.lower() in CLOSED,
            labels=tuple(str(label) for label in data.get("labels") or ()),
            url=path.as_uri(),
            assignee=data.get("assignee"),
            raw=data,
        )

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2, ensure_ascii=False)
                out.write("\n")
            os.replace(tmp, path)
        except OSError as exc:
            raise TrackerUnavailable(f"example_files: cannot write {path}: {exc}") from exc

    def _claim(self) -> Path:
        """A new issue file, numbered after the highest one, created exclusively."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            numbers = [int(p.stem) for p in self.folder.glob("*.json") if p.stem.isdigit()]
            n = max(numbers, default=0) + 1
            while True:
                path = self.folder / f"{n}.json"
                try:
                    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    return path
                except FileExistsError:
                    n += 1
        except OSError as exc:
            raise TrackerUnavailable(
                f"example_files: cannot write in {self.folder}: {exc}"
            ) from exc

    def _create(self, draft: IssueDraft) -> Issue:
        path = self._claim()
        data = {
            "key": path.stem,
            "title": draft.title,
            "body": draft.body,
            "status": "closed" if draft.closed else "open",
            "labels": [label_for(draft.item_id), *draft.labels],
            "assignee": None,
        }
        self._write(path, data)
        return self._read(path)

    def _update(self, current: Issue, draft: IssueDraft) -> Issue:
        path = self._path(current.key)
        data = dict(self._read(path).raw)
        data["title"], data["body"] = draft.title, draft.body
        if draft.closed != current.closed:  # keep a finer status ("in review") otherwise
            data["status"] = "closed" if draft.closed else "open"
        labels = [str(label) for label in data.get("labels") or ()]
        for label in (label_for(draft.item_id), *draft.labels):
            if draft.item_id and label not in labels:
                labels.append(label)
        data["labels"] = labels
        self._write(path, data)
        return self._read(path)

    def _find(self, item_id: str) -> Issue | None:
        label = label_for(item_id)
        if not self.folder.is_dir():
            return None
        for path in sorted(self.folder.glob("*.json"), key=lambda p: p.stem.zfill(12)):
            if path.stem.isdigit() and path.stat().st_size:
                issue = self._read(path)
                if label in issue.labels:
                    return issue
        return None

    # -- the kind's methods: the file work runs off the event loop ---------------------
    async def create_issue(self, draft: IssueDraft) -> Issue:
        return await asyncio.to_thread(self._create, draft)

    async def update_issue(self, current: Issue, draft: IssueDraft) -> Issue:
        return await asyncio.to_thread(self._update, current, draft)

    async def get_issue(self, key: str) -> Issue:
        return await asyncio.to_thread(self._read, self._path(key))

    async def find_issue(self, item_id: str) -> Issue | None:
        return await asyncio.to_thread(self._find, item_id)
