"""Reserve before the call, reconcile after it.

:meth:`Quotas.reserve` turns the policies that apply to a call (its tenant, team, project
and key) into window counters and reserves an upper bound on all of them at once
(requests +1, tokens = the prompt's bound + the output allowed, cost of that), or raises
:class:`QuotaExceeded` with ``Retry-After``. When the caller named no output limit, the
output is flexible: as much as the tightest budget has room for, up to a default
(``flex``), and the caller sends that as ``max_tokens``. :meth:`Quotas.reconcile`
replaces the reservation with the usage charged, which the gateway never lets exceed it
(see ``musubi.gateway.pipeline``). So concurrent calls never overspend a budget.
Policies come from a per-tenant cache (no query on the hot path once warm), kept until
the tenant's policies change (:mod:`musubi.storage.changes`).

A reservation that takes a counter from under 80 % of its limit to 80 % or more (exact:
the store's counters are atomic, so one call per window and store crosses) records a
``quota_80`` chat alert (:mod:`musubi.alerts`), unique per tenant and
counter window (per hour for a per-minute limit). The call only notes it in memory;
:meth:`Quotas.flush_warnings` records what was noted, every 2 s in the server
(``musubi.api.app``) and at shutdown.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import select

from musubi.alerts import record_alert
from musubi.context import bind_tenant
from musubi.errors import QuotaExceeded
from musubi.quotas.models import QuotaPolicy
from musubi.quotas.store import Counter, RateLimitStore
from musubi.storage.database import Database
from musubi.storage.readthrough import Freshness, ReadThrough

__all__ = ["QuotaScope", "Quotas", "Reservation"]

MICRO = 1_000_000  # cost counters count micro-dollars
WARN_AT = (4, 5)  # a quota warning when a counter reaches 4/5 (80 %) of its limit

log = logging.getLogger("musubi.quotas")


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
    tokens: int  # reserved, flexible part included
    cost: float  # USD
    counters: list[Counter] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False
    granted: int = 0  # flexible units granted (output tokens)
    budgeted: bool = False  # a token or cost limit applies
    cost_units: int = 0  # micro-dollars reserved, exactly as added to the counters


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


@dataclass(frozen=True)
class _Limit:
    """One limit of a policy, in counter units, read once per cache load (not from the
    ORM object on every call)."""

    scope: tuple[str, str]  # (scope, scope id) as QuotaScope.ids() names it
    name: str  # e.g. "tokens_per_minute"
    window: str
    what: str  # requests | tokens | cost
    units: int
    label: str  # e.g. "tenant tokens_per_minute"


def _limits(policies: list[QuotaPolicy]) -> list[_Limit]:
    out = []
    for p in policies:
        for name, (window, what) in _METRICS.items():
            limit = getattr(p, name)
            if limit is None:
                continue
            units = round(limit * MICRO) if what == "cost" else int(limit)
            out.append(
                _Limit((p.scope, p.scope_id), name, window, what, units, f"{p.scope} {name}")
            )
    return out


class Quotas:
    def __init__(
        self,
        db: Database,
        store: RateLimitStore,
        *,
        cache_seconds: float = 5.0,
        clock: type[datetime] = datetime,
        feed: Freshness | None = None,
        max_items: int = 100_000,  # tenants whose policies are kept (cache_max_entries)
    ) -> None:
        self.db = db
        self.store = store
        self.clock = clock  # where the windows' time comes from (a test stops it mid-minute)
        self._limits = ReadThrough(self._load, ttl=cache_seconds, feed=feed, max_items=max_items)
        self._warnings: list[tuple[QuotaScope, _Limit, str, int]] = []

    async def flush_warnings(self) -> int:
        """Record the quota warnings noted since the last flush (a counter that reached
        80 % of its limit); returns how many were new (not recorded by another process)."""
        noted, self._warnings = self._warnings, []
        recorded = 0
        for scope, lim, key, value in noted:
            try:
                recorded += await self._record_warning(scope, lim, key, value)
            except Exception:  # one warning must not stop the others; logged with trace
                log.exception("quota warning for %s not recorded", key)
        return recorded

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget the cached policies of one tenant (None: of every tenant)."""
        self._limits.invalidate(None if tenant_id is None else lambda key, _: key == tenant_id)

    async def _load(self, tenant_id: str) -> list[_Limit]:
        with bind_tenant(tenant_id):
            async with self.db.read() as s:
                return _limits(list((await s.scalars(select(QuotaPolicy))).all()))

    async def budgeted(self, scope: QuotaScope) -> bool:
        """Whether a token or cost limit applies to ``scope`` (else only requests count)."""
        limits = await self._limits.get(scope.tenant_id) or []
        applicable = set(scope.ids())
        return any(lim.what != "requests" and lim.scope in applicable for lim in limits)

    async def reserve(
        self,
        scope: QuotaScope,
        *,
        tokens: int,
        cost: float,
        flex: tuple[int, int] = (0, 0),
        flex_cost: float = 0.0,
    ) -> Reservation:
        """Reserve ``tokens`` and ``cost`` plus between ``flex[0]`` and ``flex[1]`` more
        tokens (as many as fit), each costing ``flex_cost`` USD."""
        limits = await self._limits.get(scope.tenant_id) or []
        applicable = set(scope.ids())
        fixed_cost = _micro(cost)
        amounts = {"requests": 1, "tokens": tokens, "cost": fixed_cost}
        per_unit = {"requests": 0.0, "tokens": 1.0, "cost": flex_cost * MICRO}
        windows = _windows(self.clock.now(UTC))
        counters: list[Counter] = []
        names: list[tuple[str, str, float]] = []
        used: list[_Limit] = []
        for lim in limits:
            if lim.scope not in applicable:
                continue
            win_id, ttl, resets = windows[lim.window]
            key = f"{scope.tenant_id}:{lim.scope[0]}:{lim.scope[1]}:{lim.name}:{win_id}"
            counters.append(Counter(key, amounts[lim.what], lim.units, ttl, per_unit[lim.what]))
            names.append((lim.label, lim.what, resets))
            used.append(lim)
        low, high = flex
        budgeted = any(what != "requests" for _, what, _ in names)
        if not budgeted:  # nothing limits the flexible part: all of it
            granted = high
            reservation = Reservation(tokens + granted, cost + granted * flex_cost, counters)
            reservation.granted = granted
            if not counters:
                return reservation
            allowed, values, failed = await self.store.reserve(counters)
        else:
            allowed, values, failed, granted = await self.store.reserve_flex(counters, low, high)
            reservation = Reservation(tokens + granted, cost + granted * flex_cost, counters)
            reservation.granted, reservation.budgeted = granted, True
            reservation.cost_units = fixed_cost + math.ceil(per_unit["cost"] * granted)
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
        num, den = WARN_AT
        for c, value, lim in zip(counters, values, used, strict=True):
            before = value - c.amount - math.ceil(c.per_unit * granted)
            if before * den < c.limit * num <= value * den:
                self._warnings.append((scope, lim, c.key, value))
        return reservation

    async def _record_warning(self, scope: QuotaScope, lim: _Limit, key: str, value: int) -> bool:
        window = key.rsplit(":", 1)[1]
        shown, limit = _show(value, lim.what), _show(lim.units, lim.what)
        where, scope_id = lim.scope
        project = scope.project_id if where in ("project", "key") else None
        facts = {"scope": f"{where} {scope_id}".strip(), "limit": lim.name}
        facts |= {"used": shown, "of": limit, "window": window}
        # A per-minute limit may cross every minute under steady load: its warning is
        # recorded once per hour (the key names the hour, not the minute).
        once = key[:-2] if lim.window == "minute" else key
        return await record_alert(
            self.db,
            scope.tenant_id,
            "quota_80",
            f"quota:{once}",
            f"Quota at 80 %: {lim.label}",
            f"{shown} of {limit} used ({where} {lim.name}, window {window}).",
            facts,
            project_id=project,
        )

    async def reconcile(self, reservation: Reservation, *, tokens: int, cost: float) -> None:
        """Replace the estimate with the real usage (0, 0 releases a failed call's tokens)."""
        if reservation.settled:
            return
        reservation.settled = True
        reserved_cost = reservation.cost_units or _micro(reservation.cost)
        delta = {
            "tokens": tokens - reservation.tokens,
            "cost": _micro(cost) - reserved_cost,
        }
        deltas = []
        for c in reservation.counters:
            what = _what(c.key)
            if delta.get(what):
                deltas.append((c.key, delta[what], c.ttl_s))
        await self.store.adjust(deltas)


def _micro(usd: float) -> int:
    """Micro-dollars, rounded up (after dropping float noise below a millionth of one)."""
    return math.ceil(round(usd * MICRO, 6))


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
