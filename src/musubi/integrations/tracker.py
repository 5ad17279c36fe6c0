"""The ``Tracker`` kind: one small async base class for issue trackers.

A tracker turns MUSUBI's spec items (requirements, tasks) into issues and back. Each
implementation (:mod:`.jira`, :mod:`.github`) is a thin ``httpx`` client: the vendors'
Python SDKs are synchronous (``jira``) or bring their own HTTP stack that could not go
through the egress policy's transport (``githubkit``'s is httpx too, but its typed models
for 800 routes cost seconds of import for the five calls made here).

Errors are translated at this boundary into :class:`TrackerError` and its subclasses:

::

    TrackerError              anything the tracker refused; ``retryable`` says whether to try later
    ├── TrackerRateLimited    429 or a secondary limit: retry after ``retry_after`` seconds
    ├── TrackerUnavailable    5xx, timeout, connection refused: retry with backoff
    └── TrackerRefused        4xx: a revoked token, an unknown project, a refused field
                              (``field`` names it); parked until someone fixes the cause
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from musubi.egress.policy import EgressRefused

if TYPE_CHECKING:  # httpx is imported where a tracker is opened, not with the app
    import httpx

__all__ = [
    "Issue",
    "IssueDraft",
    "RateLimiter",
    "Tracker",
    "TrackerError",
    "TrackerRateLimited",
    "TrackerRefused",
    "TrackerUnavailable",
    "label_for",
    "raise_for_status",
]

LABEL_PREFIX = "musubi-"


def label_for(item_id: str) -> str:
    """The label that carries a spec item's ID on the tracker (``musubi-REQ-001``):
    no spaces or colons, which JIRA labels refuse."""
    return LABEL_PREFIX + item_id


@dataclass(frozen=True)
class IssueDraft:
    """What MUSUBI wants an issue to say."""

    item_id: str
    title: str
    body: str
    closed: bool = False
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Issue:
    """An issue as the tracker shows it."""

    key: str  # PROJ-12, or the GitHub issue number as text
    title: str
    body: str
    status: str  # the tracker's own status name ("In Progress", "open", "closed")
    closed: bool
    labels: tuple[str, ...] = ()
    url: str = ""
    assignee: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def item_id(self) -> str | None:
        for label in self.labels:
            if label.startswith(LABEL_PREFIX):
                return label[len(LABEL_PREFIX) :]
        return None


class TrackerError(Exception):
    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class TrackerUnavailable(TrackerError):
    retryable = True


class TrackerRateLimited(TrackerUnavailable):
    def __init__(self, message: str, *, retry_after: float, status: int | None = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class TrackerRefused(TrackerError):
    def __init__(self, message: str, *, status: int | None = None, field: str | None = None):
        super().__init__(message, status=status)
        self.field = field


def retry_after_s(response: httpx.Response, default: float) -> float:
    """Seconds from ``Retry-After`` (seconds or an HTTP date), or GitHub's
    ``x-ratelimit-reset`` epoch when the primary limit is spent."""
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    reset = response.headers.get("x-ratelimit-reset")
    if reset and response.headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    return default


def raise_for_status(vendor: str, response: httpx.Response, describe: str) -> None:
    """Translate a failed answer into the tracker error hierarchy."""
    status = response.status_code
    if status < 400:
        return
    text = response.text[:500]
    if status == 429 or (status == 403 and _secondary_limit(response)):
        raise TrackerRateLimited(
            f"{vendor}: rate limited on {describe}",
            retry_after=retry_after_s(response, 60.0 if status == 403 else 1.0),
            status=status,
        )
    if status >= 500:
        raise TrackerUnavailable(f"{vendor}: {status} on {describe}: {text}", status=status)
    if status == 401:
        raise TrackerRefused(
            f"{vendor}: the token was refused (401) on {describe}: check or renew it",
            status=status,
        )
    raise TrackerRefused(f"{vendor}: {status} on {describe}: {text}", status=status)


def _secondary_limit(response: httpx.Response) -> bool:
    if response.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in response.headers:
        return True
    return "secondary rate limit" in response.text.lower()


def _egress_refusal(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, EgressRefused):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class RateLimiter:
    """A token bucket: at most ``rate`` requests a second, ``burst`` at once. Spacing the
    requests keeps a sync under the vendor's limit instead of bouncing off it (429s)."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._at = time.monotonic()
                self._tokens = 0.0
            else:
                self._tokens -= 1

    def pause(self, seconds: float) -> None:
        """The tracker said to wait: take the tokens of ``seconds`` away."""
        self._tokens = min(self._tokens, 0.0) - seconds * self.rate


class Tracker(ABC):
    """One project on one tracker (a JIRA project, a GitHub repository)."""

    vendor: str = ""

    def __init__(self, client: httpx.AsyncClient, limiter: RateLimiter | None = None) -> None:
        self.client = client
        self.limiter = limiter or RateLimiter(0)
        self.requests = 0  # sent, for the benchmark's requests per item

    async def send(self, method: str, url: str, describe: str, **kwargs: Any) -> httpx.Response:
        """One request, spaced by the limiter; errors translated."""
        import httpx

        await self.limiter.acquire()
        self.requests += 1
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TrackerUnavailable(f"{self.vendor}: timeout on {describe}") from exc
        except httpx.TransportError as exc:
            if _egress_refusal(exc):  # the operator's policy: no retry will change it
                raise TrackerRefused(f"{self.vendor}: {exc} (egress policy)") from exc
            raise TrackerUnavailable(f"{self.vendor}: cannot connect ({exc})") from exc
        try:
            raise_for_status(self.vendor, response, describe)
        except TrackerRateLimited as exc:
            self.limiter.pause(exc.retry_after)
            raise
        return response

    @abstractmethod
    async def create_issue(self, draft: IssueDraft) -> Issue:
        """Create an issue labelled with the item's ID."""

    @abstractmethod
    async def update_issue(self, current: Issue, draft: IssueDraft) -> Issue:
        """Set title, body and open/closed state (through the workflow where there is
        one); ``current`` is the issue as just read, so unchanged parts are not sent."""

    @abstractmethod
    async def get_issue(self, key: str) -> Issue:
        """The issue as it is now."""

    @abstractmethod
    async def find_issue(self, item_id: str) -> Issue | None:
        """The issue labelled with ``item_id``, if one exists (open or closed)."""

    async def close_issue(self, current: Issue) -> Issue:
        draft = IssueDraft(current.item_id or "", current.title, current.body, closed=True)
        return await self.update_issue(current, draft)

    async def aclose(self) -> None:
        await self.client.aclose()
