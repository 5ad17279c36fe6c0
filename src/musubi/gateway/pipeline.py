"""The call path: route, cache, coalesce, quota, call upstream with retries and fallbacks,
settle usage. :class:`Gateway` is owned by the app (``AppState.gateway``); nothing here
reads a module global.

Token and cost budgets hold under any burst: a call reserves an upper bound of its prompt
(:mod:`musubi.gateway.budget`) plus its output limit, sends that limit upstream as
``max_tokens`` (granted from what the budget has left when the client named none), and is
charged its reported usage but never more than it reserved. Usage reported beyond the
reservation (an upstream that ignores ``max_tokens``) is recorded in the usage ledger as
reported, and logged, but cannot push a budget past its limit.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from musubi.access.principal import Principal
from musubi.errors import InvalidInput, UpstreamError, UpstreamTimeout
from musubi.gateway.breaker import CircuitBreaker
from musubi.gateway.budget import DEFAULT_OUTPUT, asked_output, prompt_bound, with_output_cap
from musubi.gateway.cache import cache_key
from musubi.gateway.catalogue import ModelInfo
from musubi.gateway.chunks import Accumulator, replay_as_chunks
from musubi.gateway.config import RouterConfig
from musubi.gateway.providers.base import Op, StreamCut, UpstreamStatus
from musubi.gateway.registry import GatewayParts
from musubi.gateway.router import Deployment, Plan, RoutingTable, pick_weighted
from musubi.gateway.tokens import count_request_tokens, estimate_text
from musubi.quotas import Quotas, QuotaScope, Reservation
from musubi.usage import UsageRecord

__all__ = ["Call", "Gateway", "Outcome"]

log = logging.getLogger("musubi.gateway")

T = TypeVar("T")
Chunks = AsyncGenerator[dict[str, Any], None]


@dataclass
class Call:
    principal: Principal
    op: Op
    body: dict[str, Any]  # canonical (OpenAI) request
    request_id: str | None = None
    task: str | None = None
    use_cache: bool = True

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream")) and self.op != "embedding"


@dataclass
class Outcome:
    model: str
    data: dict[str, Any] | None = None
    chunks: Chunks | None = None
    route: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def route_header(self) -> str:
        return "; ".join(self.route)


@dataclass
class _Settle:
    call: Call
    model: ModelInfo
    provider: str
    started: float
    reservation: Reservation | None
    cached: bool = False


class Gateway(GatewayParts):
    """Routing tables per tenant are cached for ``ttl`` seconds and invalidated on change."""

    breaker: CircuitBreaker
    rng: random.Random

    async def run(self, call: Call, quotas: Any = None, ledger: Any = None) -> Outcome:
        table = await self.table(call.principal.tenant_id)
        plan = table.plan(str(call.body.get("model") or ""), call.task)
        model = plan.groups[0][0]
        cfg = table.config
        out = Outcome(model=model.name, route=[f"model={model.name}", *plan.how])
        cacheable = cfg.cache and call.use_cache
        key = (
            cache_key(call.principal.tenant_id, call.op, model.name, call.body) if cacheable else ""
        )
        if cacheable:
            hit = await self.cache.get(key)
            if hit is not None:
                out.route.append("cache=hit")
                settle = _Settle(call, model, "cache", time.perf_counter(), None, cached=True)
                self._settle(settle, hit.get("usage"), "success", quotas, ledger)
                if call.stream:
                    out.chunks = _iterate(replay_as_chunks(hit))
                else:
                    out.data = hit
                return out
            out.route.append("cache=miss")
        reservation = None
        if quotas is not None:
            reservation = await self._reserve(call, model, quotas)
            out.headers.update(reservation.headers)
            if reservation.budgeted and call.op != "embedding" and asked_output(call.body) is None:
                call.body = with_output_cap(call.body, reservation.granted)
                cacheable = False  # an answer cut to this call's budget is not for others
        settle = _Settle(call, model, "", time.perf_counter(), reservation)
        try:
            if call.stream:
                dep, (agen, first) = await self._attempts(plan, cfg, out.route, self._opener(call))
                settle.provider = dep.provider.name
                out.chunks = self._relay(
                    agen, first, settle, key if cacheable else None, cfg, quotas, ledger
                )
                return out

            async def work() -> dict[str, Any]:
                dep, data = await self._attempts(plan, cfg, out.route, self._sender(call))
                settle.provider = dep.provider.name
                if cacheable:
                    await self.cache.set(key, data, cfg.cache_ttl_s)
                return data

            if cacheable:
                data, shared = await self.coalescer.run(key, work)
                if shared:
                    out.route.append("coalesced=yes")
                    settle.cached, settle.provider = True, "coalesced"
            else:
                data = await work()
            out.data = data
            self._settle(settle, data.get("usage"), "success", quotas, ledger)
            return out
        except BaseException as exc:
            self._settle(settle, None, _outcome_of(exc), quotas, ledger, out_tokens=0)
            raise

    async def _reserve(self, call: Call, model: ModelInfo, quotas: Quotas) -> Reservation:
        """Reserve the call's upper bound: its prompt's bound plus its output limit (the
        client's, or as much of :data:`DEFAULT_OUTPUT` as the budgets have room for)."""
        scope = _scope(call.principal)
        if not await quotas.budgeted(scope):  # only requests are counted: no token math
            return await quotas.reserve(scope, tokens=0, cost=0.0)
        prompt = await prompt_bound(call.body, model)
        asked = asked_output(call.body)
        flex = (asked, asked) if asked else (1, DEFAULT_OUTPUT)
        if call.op == "embedding":
            flex = (0, 0)
        return await quotas.reserve(
            scope,
            tokens=prompt,
            cost=model.cost(prompt, 0),
            flex=flex,
            flex_cost=model.output_price / 1e6,
        )

    # -- upstream attempts ---------------------------------------------------------------
    def _sender(self, call: Call) -> Callable[[Deployment], Awaitable[dict[str, Any]]]:
        async def send(dep: Deployment) -> dict[str, Any]:
            return await dep.provider.send(call.op, call.body, dep.model.upstream)

        return send

    def _opener(
        self, call: Call
    ) -> Callable[[Deployment], Awaitable[tuple[Chunks, dict[str, Any]]]]:
        async def open_(dep: Deployment) -> tuple[Chunks, dict[str, Any]]:
            agen = dep.provider.stream(call.op, call.body, dep.model.upstream)
            try:
                first = await anext(agen)
            except StopAsyncIteration as exc:
                raise StreamCut(dep.credential, "the stream ended before any data") from exc
            except BaseException:
                await agen.aclose()
                raise
            return agen, first

        return open_

    async def _attempts(
        self,
        plan: Plan,
        cfg: RouterConfig,
        route: list[str],
        fn: Callable[[Deployment], Awaitable[T]],
    ) -> tuple[Deployment, T]:
        last: UpstreamError | None = None
        tried: list[str] = []
        for gi, (model, deps) in enumerate(plan.groups):
            for dep in pick_weighted(deps, self.rng):
                for attempt in range(cfg.retries + 1):
                    if not self.breaker.allow(dep.id, cfg.breaker_cooldown_s):
                        tried.append(f"{dep.credential}:circuit-open")
                        break
                    try:
                        async with asyncio.timeout(cfg.timeout_s):
                            result = await fn(dep)
                    except TimeoutError:
                        last = UpstreamTimeout(dep.credential, f"no answer in {cfg.timeout_s}s")
                    except UpstreamStatus as exc:
                        if exc.status in (400, 413, 422):
                            raise InvalidInput(exc.message, field="body") from exc
                        last = exc
                    except UpstreamError as exc:
                        last = exc
                    else:
                        self.breaker.success(dep.id)
                        tried.append(f"{dep.credential}:ok")
                        if gi:
                            route.append(f"fallback={plan.groups[0][0].name}->{model.name}")
                        route.append(f"deployment={dep.credential}")
                        route.append(f"tried={','.join(tried)}")
                        return dep, result
                    self.breaker.failure(dep.id, cfg.breaker_failures)
                    tried.append(f"{dep.credential}:{last.status or type(last).__name__}")
                    wait = _backoff(cfg, attempt, last, self.rng)
                    if attempt >= cfg.retries or wait is None:
                        break
                    await self.sleep(wait)
        route.append(f"tried={','.join(tried)}")
        if last is not None:
            last.detail["route"] = "; ".join(route)
        if last is None:
            last = UpstreamError(
                plan.groups[0][1][0].credential, "every deployment's circuit is open"
            )
        raise last

    async def _relay(
        self,
        agen: Chunks,
        first: dict[str, Any],
        settle: _Settle,
        key: str | None,
        cfg: RouterConfig,
        quotas: Any,
        ledger: Any,
    ) -> Chunks:
        acc = Accumulator()
        outcome = "cancelled"
        try:
            acc.feed(first)
            yield first
            async for c in agen:
                acc.feed(c)
                yield c
            outcome = "success"
            if key is not None:
                await self.cache.set(key, acc.response(), cfg.cache_ttl_s)
        except UpstreamError:
            outcome = "upstream_cut"
            raise
        finally:
            await agen.aclose()
            self._settle(settle, acc.usage, outcome, quotas, ledger, out_tokens=-acc.output_chars)

    # -- usage -----------------------------------------------------------------------------
    def _settle(
        self,
        s: _Settle,
        usage: dict[str, Any] | None,
        outcome: str,
        quotas: Any,
        ledger: Any,
        out_tokens: int | None = None,
    ) -> None:
        """Reconcile the reservation and record usage; never awaits (safe in a finally)."""
        if usage:
            tin, tout = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        else:
            tin = (
                count_request_tokens(s.call.body, s.model, exact=False) if outcome != "error" else 0
            )
            # negative: characters streamed so far, estimated as tokens
            tout = estimate_text("x" * -out_tokens) if out_tokens and out_tokens < 0 else 0
        cost = 0.0 if s.cached else s.model.cost(tin, tout)
        r = s.reservation
        if quotas is not None and r is not None:
            charged_in, charged_out = tin, tout
            if r.budgeted:  # never more than reserved: the budget's promise
                charged_in, charged_out = min(tin, r.tokens - r.granted), min(tout, r.granted)
                if (charged_in, charged_out) != (tin, tout):
                    log.warning(
                        "%s reported %d prompt and %d output tokens, over the %d and %d "
                        "reserved; the budget is charged what was reserved",
                        s.provider or s.model.provider,
                        tin,
                        tout,
                        r.tokens - r.granted,
                        r.granted,
                    )
            charged_cost = 0.0 if s.cached else s.model.cost(charged_in, charged_out)
            self.spawn(quotas.reconcile(r, tokens=charged_in + charged_out, cost=charged_cost))
        if ledger is not None:
            p = s.call.principal
            ledger.record(
                UsageRecord(
                    tenant_id=p.tenant_id,
                    team_id=p.project_team_id,
                    project_id=p.project_id,
                    key_id=p.key_id,
                    user_id=p.user_id,
                    model=s.model.name,
                    provider=s.provider or s.model.provider,
                    input_tokens=tin,
                    output_tokens=tout,
                    cached=s.cached,
                    cost=cost,
                    latency_ms=(time.perf_counter() - s.started) * 1000,
                    outcome=outcome,
                    request_id=s.call.request_id,
                    actor=p.actor,
                )
            )


def _scope(p: Principal) -> QuotaScope:
    return QuotaScope(p.tenant_id, p.project_team_id, p.project_id, p.key_id)


def _outcome_of(exc: BaseException) -> str:
    if isinstance(exc, UpstreamTimeout):
        return "upstream_timeout"
    if isinstance(exc, UpstreamError):
        return "upstream_error"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "error"


def _backoff(
    cfg: RouterConfig, attempt: int, exc: UpstreamError, rng: random.Random
) -> float | None:
    """Seconds to wait before retrying, or None to move on (not retryable, or too long)."""
    if isinstance(exc, UpstreamStatus):
        if not exc.retryable:
            return None
        if exc.retry_after is not None:
            wait: float = exc.retry_after
            return None if wait > cfg.max_retry_after_s else wait
    return float(cfg.backoff_s * 2.0**attempt * rng.uniform(0.5, 1.5))


async def _iterate(items: list[dict[str, Any]]) -> Chunks:
    for item in items:
        yield item


def table_usable(table: RoutingTable) -> list[str]:
    return table.usable_models()
