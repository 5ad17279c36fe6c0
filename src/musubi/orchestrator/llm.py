"""Model calls of a run: through the gateway in this process, as the key that made the run.

:meth:`Gateway.run` is the same path ``/v1/chat/completions`` takes, so routing, fallbacks,
the cache, quotas and the usage ledger apply to a step's call exactly as to a live one; no
loopback HTTP hop. The model of a step is the tenant's routing for ``musubi/<task>``, else
its alias ``default``, else its first usable chat model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from musubi.access.principal import Principal
from musubi.context import bind_tenant
from musubi.errors import Conflict, NotFound
from musubi.extras import install_command
from musubi.gateway.catalogue import ModelInfo
from musubi.gateway.pipeline import Call, Gateway
from musubi.gateway.router import RoutingTable

__all__ = [
    "ChatModel",
    "Completion",
    "GatewayModel",
    "NoModel",
    "Reply",
    "blocking_chat",
    "choose_model",
]

NO_MODEL_HINT = (
    "add a provider (PUT /v1/gateway/providers/<name>, or `musubi gateway providers set`) "
    f"or install the offline model (`{install_command('local')}`)"
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


@dataclass
class Reply:
    """One chat turn's answer: the assistant message as OpenAI writes it (``content``, and
    ``tool_calls`` when the model called tools), with its usage and the ledger's cost."""

    message: dict[str, Any]
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    finish_reason: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return str(self.message.get("content") or "")


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
        reply = await self.respond(body, request_id)
        return Completion(
            reply.text, reply.model, reply.input_tokens, reply.output_tokens, reply.cost
        )

    async def respond(self, body: dict[str, Any], request_id: str | None = None) -> Reply:
        """Any chat request in the OpenAI format (``tools`` included), not streamed."""
        body = {**body, "stream": False}
        call = Call(principal=self.principal, op="chat", body=body, request_id=request_id)
        outcome = await self.gateway.run(call, self.quotas, self.ledger)
        data = outcome.data or {}
        choices = data.get("choices") or [{}]
        message = dict(choices[0].get("message") or {})
        usage = data.get("usage") or {}
        tin, tout = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        table = await self.gateway.table(self.principal.tenant_id)
        deps = table.by_model.get(outcome.model)
        info = self.gateway.catalogue.get(outcome.model) or (deps[0].model if deps else None)
        shared = {"cache=hit", "coalesced=yes"} & set(outcome.route)  # the ledger charges 0
        cost = info.cost(tin, tout) if info and not shared else 0.0
        calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        finish = str(choices[0].get("finish_reason") or "")
        return Reply(message, outcome.model, tin, tout, cost, finish, calls)


def blocking_chat(
    model: GatewayModel, loop: asyncio.AbstractEventLoop, timeout: float = 600
) -> Callable[[dict[str, Any]], Reply]:
    """:meth:`GatewayModel.respond` for code running in a worker thread (the knowledge
    index and trace recovery are synchronous): each call runs on ``loop`` as the model's
    principal, its tenant bound, and the thread waits for the answer."""

    async def one(body: dict[str, Any]) -> Reply:
        with bind_tenant(model.principal.tenant_id):
            return await model.respond(body)

    def chat(body: dict[str, Any]) -> Reply:
        return asyncio.run_coroutine_threadsafe(one(body), loop).result(timeout)

    return chat
