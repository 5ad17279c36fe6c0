"""The gateway in this process, as an API key, for commands that call models on a local
checkout (``musubi search --files --agent``, ``musubi trace recover --verify``).

Like ``musubi run --local``: this machine's MUSUBI database (``MUSUBI_DATABASE_URL``), the
key's tenant, its provider credentials, routing, quotas and usage ledger; the key must
hold ``models:use``. :class:`LocalModel` gives the synchronous code of those commands a
``chat`` callable (each request carried to the gateway's event loop), the chosen model's
name, token counter and price.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from musubi.errors import PermissionDenied
from musubi.gateway.catalogue import ModelInfo

__all__ = ["LocalModel", "local_model"]


@dataclass
class LocalModel:
    chat: Callable[[dict[str, Any]], Any]
    info: ModelInfo

    @property
    def model(self) -> str:
        return self.info.name

    def count(self, text: str) -> int:
        from musubi.gateway.tokens import count_text

        return count_text(text, self.info)

    def price(self, tokens_in: int, tokens_out: int) -> float:
        return self.info.cost(tokens_in, tokens_out)


@asynccontextmanager
async def local_model(key: str, task: str, model: str | None) -> AsyncIterator[LocalModel]:
    """The model ``task`` runs on for ``key`` (``model``, else the routing of
    ``musubi/<task>``, else ``default``), reachable from a worker thread."""
    from musubi.api.app import open_state
    from musubi.context import Actor, bind_actor, bind_tenant
    from musubi.orchestrator.llm import GatewayModel, blocking_chat, choose_model
    from musubi.runtime import open_gateway
    from musubi.settings import Settings

    settings = Settings()
    state = await open_state(settings, announce=False)
    gateway = open_gateway(state)
    state.gateway = gateway
    try:
        principal = await state.auth.authenticate(key)
        if not principal.holds_anywhere("models:use"):
            raise PermissionDenied("models:use")
        with bind_tenant(principal.tenant_id), bind_actor(Actor(principal.actor)):
            info = choose_model(await gateway.table(principal.tenant_id), task, model)
            gm = GatewayModel(gateway, principal, state.quotas, state.ledger)
            yield LocalModel(blocking_chat(gm, asyncio.get_running_loop()), info)
    finally:
        await state.close()  # the gateway and the usage ledger with it
