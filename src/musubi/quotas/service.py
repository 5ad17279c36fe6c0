"""Reserve before the call, reconcile after it.

:meth:`Quotas.reserve` turns the policies that apply to a call (its tenant, team, project
and key) into window counters and reserves the estimate on all of them at once (requests
+1, tokens = prompt + max_tokens, cost of that), or raises :class:`QuotaExceeded` with
``Retry-After``. :meth:`Quotas.reconcile` corrects the counters with the real usage. So
concurrent calls can never overspend a budget by more than what they reserved.
Policies come from a short per-tenant cache (no query on the hot path once warm).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import select

from musubi.errors import QuotaExceeded
from musubi.quotas.models import QuotaPolicy
from musubi.quotas.store import Counter, RateLimitStore
from musubi.storage.database import Database
from musubi.tenancy.context import bind_tenant

__all__ = ["QuotaScope", "Quotas", "Reservation"]

MICRO = 1_000_000  # cost counters count micro-dollars


@dataclass(frozen=True)
class QuotaScope:
    tenant_id: str
    team_id: str | None = None
    project_id: str | None = None
    key_id: str | None = None

    def ids(self) -> list[tuple[str, str]]:
        out = [("tenant", "")]
        out += [
            (s, i)
            for s, i in (("team", self.team_id), ("project", self.project_id), ("key", self.key_id))
            if i
        ]
        return out


@dataclass
class Reservation:
    tokens: int
    cost: float
    counters: list[Counter] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


def _windows(now: datetime) -> dict[str, tuple[str, int, float]]:
    """metric window -> (window id, ttl seconds, seconds until it resets)."""
    minute = now.replace(second=0, microsecond=0)
    m_id, d_id, mo_id, day_end, month_end = _window_ids(minute)
    return {
        "minute": (m_id, 120, 60 - now.second - now.microsecond / 1e6),
        "day": (d_id, 2 * 86400, (day_end - now).total_seconds()),
        "month": (mo_id, 33 * 86400, (month_end - now).total_seconds()),
    }


@lru_cache(maxsize=4)
def _window_ids(minute: datetime) -> tuple[str, str, str, datetime, datetime]:
    """The ids and ends of the windows containing ``minute``: formatted once a minute,
    not on every call (strftime was most of a reservation's cost)."""
    day = minute.replace(hour=0, minute=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    ids = minute.strftime("%Y%m%d%H%M"), day.strftime("%Y%m%d"), month.strftime("%Y%m")
    return (*ids, day + timedelta(days=1), next_month)


# limit name -> (window, what it counts)
_METRICS = {
    "requests_per_minute": ("minute", "requests"),
    "tokens_per_minute": ("minute", "tokens"),
    "tokens_per_day": ("day", "tokens"),
    "tokens_per_month": ("month", "tokens"),
    "cost_per_day": ("day", "cost"),
    "cost_per_month": ("month", "cost"),
}


class Quotas:
    def __init__(
        self,
        db: Database,
        store: RateLimitStore,
        *,
        cache_seconds: float = 5.0,
        clock: type[datetime] = datetime,
    ) -> None:
        self.db = db
        self.store = store
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._policies: dict[str, tuple[float, list[QuotaPolicy]]] = {}

    def invalidate(self, tenant_id: str) -> None:
        self._policies.pop(tenant_id, None)

    async def _tenant_policies(self, tenant_id: str) -> list[QuotaPolicy]:
        cached = self._policies.get(tenant_id)
        if cached and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        with bind_tenant(tenant_id):
            async with self.db.read() as s:
                policies = list((await s.scalars(select(QuotaPolicy))).all())
        self._policies[tenant_id] = (time.monotonic(), policies)
        return policies

    async def reserve(self, scope: QuotaScope, *, tokens: int, cost: float) -> Reservation:
        now = self._clock.now(UTC)
        windows = _windows(now)
        applicable = set(scope.ids())
        amounts = {"requests": 1, "tokens": tokens, "cost": round(cost * MICRO)}
        counters: list[Counter] = []
        names: list[tuple[str, str, float]] = []
        for policy in await self._tenant_policies(scope.tenant_id):
            if (policy.scope, policy.scope_id) not in applicable:
                continue
            for limit_name, (window, what) in _METRICS.items():
                limit = getattr(policy, limit_name)
                if limit is None:
                    continue
                win_id, ttl, resets = windows[window]
                limit_units = round(limit * MICRO) if what == "cost" else int(limit)
                key = f"{scope.tenant_id}:{policy.scope}:{policy.scope_id}:{limit_name}:{win_id}"
                counters.append(Counter(key, amounts[what], limit_units, ttl))
                names.append((f"{policy.scope} {limit_name}", what, resets))
        reservation = Reservation(tokens, cost, counters)
        if not counters:
            return reservation
        allowed, values, failed = await self.store.reserve(counters)
        reservation.headers = _headers(counters, values, names)
        if not allowed:
            label, _, resets = names[failed]
            c = counters[failed]
            raise QuotaExceeded(
                f"quota exceeded: {label} is {_show(c.limit, names[failed][1])}; "
                f"retry after {resets:.0f} s",
                retry_after=max(resets, 1.0),
                headers={**reservation.headers, "retry-after": str(max(1, round(resets)))},
            )
        return reservation

    async def reconcile(self, reservation: Reservation, *, tokens: int, cost: float) -> None:
        """Replace the estimate with the real usage (0, 0 releases a failed call's tokens)."""
        if reservation.settled:
            return
        reservation.settled = True
        delta = {
            "tokens": tokens - reservation.tokens,
            "cost": round(cost * MICRO) - round(reservation.cost * MICRO),
        }
        deltas = []
        for c in reservation.counters:
            what = _what(c.key)
            if delta.get(what):
                deltas.append((c.key, delta[what], c.ttl_s))
        await self.store.adjust(deltas)


def _what(key: str) -> str:
    return _METRICS[key.split(":")[3]][1]


def _show(limit: int, what: str) -> str:
    return f"${limit / MICRO:.2f}" if what == "cost" else str(limit)


def _headers(
    counters: list[Counter], values: list[int], names: list[tuple[str, str, float]]
) -> dict[str, str]:
    """OpenAI-style x-ratelimit-* headers from the tightest per-minute counters."""
    out: dict[str, str] = {}
    for kind, metric in (("requests", "requests_per_minute"), ("tokens", "tokens_per_minute")):
        best: tuple[int, int, float] | None = None
        for c, v, (_, _, resets) in zip(counters, values, names, strict=True):
            if c.key.split(":")[3] != metric:
                continue
            remaining = max(c.limit - v, 0)
            if best is None or remaining < best[1]:
                best = (c.limit, remaining, resets)
        if best:
            out[f"x-ratelimit-limit-{kind}"] = str(best[0])
            out[f"x-ratelimit-remaining-{kind}"] = str(best[1])
            out[f"x-ratelimit-reset-{kind}"] = f"{best[2]:.0f}s"
    return out
