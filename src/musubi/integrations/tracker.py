"""The ``Tracker`` kind: one small async base class for issue trackers.

A tracker turns MUSUBI's spec items (requirements, tasks) into issues and back. Trackers
are a pluggable kind (:data:`TRACKERS`, entry points ``musubi.trackers``): an entry point
names a :class:`Tracker` subclass, which carries its vendor's specifics as class
attributes and class methods (default URL and rate, the target's form, the egress check of
its URL) and is built by :meth:`Tracker.from_config`. The built-ins
(:mod:`.jira`, :mod:`.github`, :mod:`.gitlab`, :mod:`.azure_devops`) are each a thin
``httpx`` client: the vendors'
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
from typing import TYPE_CHECKING, Any, ClassVar

from musubi.egress.policy import EgressRefused
from musubi.errors import PluginError
from musubi.integrations.kind import Configurable
from musubi.kinds import Kind

if TYPE_CHECKING:  # httpx is imported where a tracker is opened, not with the app
    import httpx

__all__ = [
    "TRACKERS",
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
    "tracker_class",
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


class Tracker(Configurable, ABC):
    """One project on one tracker (a JIRA project, a GitHub repository).

    A subclass is an implementation of the kind: its entry point's name is its
    ``vendor``. What MUSUBI asks of it before any instance exists (when an integration is
    configured) is on the class: the attributes and checks of
    :class:`~musubi.integrations.kind.Configurable`, ``default_rate``, :meth:`reference`
    and :meth:`from_config`; override the ones whose default does not fit.
    """

    #: Requests a second when the integration sets no ``options.rate_per_s`` (0: no limit).
    default_rate: ClassVar[float] = 5.0

    def __init__(self, client: httpx.AsyncClient, limiter: RateLimiter | None = None) -> None:
        self.client = client
        self.limiter = limiter or RateLimiter(0)
        self.requests = 0  # sent, for the benchmark's requests per item

    @classmethod
    def reference(cls, target: str, key: str) -> str:
        """How the spec file names the issue (``**Tracker**: <reference>``)."""
        return f"{target}#{key}"

    @classmethod
    @abstractmethod
    def from_config(
        cls,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        target: str,
        secret: dict[str, str],
        options: dict[str, Any],
        limiter: RateLimiter,
    ) -> Tracker:
        """The tracker of a configured integration: ``client`` goes through the tenant's
        egress policy, ``secret`` holds the unsealed secrets (``token``, ``email``,
        ``webhook_secret``), ``options`` the integration's options."""

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


TRACKERS: Kind[Tracker] = Kind("trackers", Tracker)
"""Issue trackers: an entry point of ``musubi.trackers`` names a :class:`Tracker`
subclass, built with :meth:`Tracker.from_config`."""


def tracker_class(name: str) -> type[Tracker]:
    """The tracker class called ``name``: :class:`InvalidInput` listing the installed
    ones if there is none, :class:`PluginError` if its entry point is not a subclass."""
    found: Any = TRACKERS.load(name)
    if not (isinstance(found, type) and issubclass(found, Tracker)):
        raise PluginError(
            f"{TRACKERS.group} entry point {name!r} is {found!r}, not a Tracker subclass"
        )
    return found
