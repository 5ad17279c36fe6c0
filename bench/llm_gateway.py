"""The gateway in this process, for the benches' LLM modes (localisation's agent, trace
recovery's judge): a temporary SQLite database with one tenant and one provider credential,
called through :class:`musubi.orchestrator.llm.GatewayModel` as that tenant, which is the
path a server's routes take (routing, cache, quotas and the usage ledger included).

The benches are synchronous; the gateway runs on an event loop in a background thread and
:func:`musubi.orchestrator.llm.blocking_chat` carries each request to it.

    gw = BenchGateway.start("local", model="smollm2-135m")           # the offline model
    gw = BenchGateway.start("openai", model="gpt-4o-mini", api_key=KEY)
    gw = BenchGateway.start("openai_compatible", model=M, base_url=URL, api_key=KEY)
    reply = gw.chat({"model": gw.model, "messages": [...]})
    gw.close()
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musubi.access.principal import Principal
from musubi.audit.signing import Signer
from musubi.context import bind_tenant, system_scope
from musubi.gateway.catalogue import ModelInfo
from musubi.gateway.pipeline import Gateway
from musubi.gateway.providers.registry import ProviderRegistry
from musubi.gateway.secrets import SecretBox
from musubi.gateway.service import set_credential
from musubi.gateway.tokens import count_text
from musubi.orchestrator.llm import GatewayModel, Reply, blocking_chat, choose_model
from musubi.settings import Settings
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.tenancy import service


@dataclass
class BenchGateway:
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    gateway: Gateway
    db: Database
    info: ModelInfo
    chat: Callable[[dict[str, Any]], Reply]

    @property
    def model(self) -> str:
        return self.info.name

    def count(self, text: str) -> int:
        return count_text(text, self.info)

    def price(self, tokens_in: int, tokens_out: int) -> float:
        return self.info.cost(tokens_in, tokens_out)

    @classmethod
    def start(
        cls, provider: str, model: str | None = None, api_key: str | None = None, base_url: str = ""
    ) -> BenchGateway:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        async def setup() -> tuple[Gateway, Database, ModelInfo, GatewayModel]:
            home = Path(tempfile.mkdtemp(prefix="musubi-bench-llm-"))
            db = Database(f"sqlite+aiosqlite:///{home}/bench.db", audit_signer=Signer.generate())
            await upgrade(db)
            box = SecretBox.load(home)
            gateway = Gateway(db, box)
            with system_scope():
                async with db.transaction() as s:
                    tenant = await service.create_tenant(s, "bench")
            with bind_tenant(tenant.id):
                async with db.transaction() as s:
                    await set_credential(
                        s,
                        box,
                        name=provider,
                        provider=provider,
                        registry=ProviderRegistry(),
                        egress=Settings().egress_rules.for_tenant(tenant.id),
                        api_key=api_key,
                        base_url=base_url,
                    )
                table = await gateway.table(tenant.id)
            info = choose_model(table, "bench", model)
            principal = Principal(tenant_id=tenant.id, user_id="usr_bench", actor="bench")
            return gateway, db, info, GatewayModel(gateway, principal)

        gateway, db, info, gm = asyncio.run_coroutine_threadsafe(setup(), loop).result()
        return cls(loop, thread, gateway, db, info, blocking_chat(gm, loop))

    def close(self) -> None:
        async def down() -> None:
            await self.gateway.close()
            await self.db.dispose()

        asyncio.run_coroutine_threadsafe(down(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def add_llm_arguments(ap: Any) -> None:
    """``--llm-provider/--llm-model/--llm-base-url/--llm-key`` of an argparse parser."""
    ap.add_argument(
        "--llm-provider",
        default="local",
        help="provider kind of the credential (local: the offline model; openai, "
        "openai_compatible, anthropic, …)",
    )
    ap.add_argument("--llm-model", default=None, help="model name (default: the first chat one)")
    ap.add_argument("--llm-base-url", default="", help="the provider's base URL, if not its own")
    ap.add_argument("--llm-key", default=None, help="the provider's API key")


def from_arguments(args: Any) -> BenchGateway:
    return BenchGateway.start(args.llm_provider, args.llm_model, args.llm_key, args.llm_base_url)
