"""Stored per-tenant gateway settings: provider credentials and router configuration.

Every change is audited in its transaction; secrets never enter the audit log.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.service import record
from musubi.egress import EgressPolicy
from musubi.errors import InvalidInput, NotFound
from musubi.gateway.config import RouterConfig
from musubi.gateway.models import GatewayConfig, ProviderCredential
from musubi.gateway.providers.base import ClientPool, Credential
from musubi.gateway.providers.registry import ProviderRegistry
from musubi.gateway.secrets import SecretBox
from musubi.storage.queries import flush_unique

__all__ = [
    "SECRET_OPTIONS",
    "delete_credential",
    "get_config",
    "list_credentials",
    "load_credentials",
    "public_credential",
    "set_config",
    "set_credential",
]

SECRET_OPTIONS = frozenset({"session_token"})


def public_credential(row: ProviderCredential) -> dict[str, Any]:
    return {
        "id": row.id,
        "tenant_id": row.tenant_id,
        "name": row.name,
        "provider": row.provider,
        "base_url": row.base_url,
        "api_key": f"…{row.key_hint}" if row.key_hint else "",
        "options": row.options,
        "models": row.models,
        "weight": row.weight,
    }


async def list_credentials(session: AsyncSession) -> list[ProviderCredential]:
    return list((await session.scalars(select(ProviderCredential).order_by("name"))).all())


async def load_credentials(session: AsyncSession, box: SecretBox) -> list[Credential]:
    out = []
    for row in await list_credentials(session):
        secret = box.open(row.secret)
        out.append(
            Credential(
                name=row.name,
                provider=row.provider,
                api_key=secret.get("api_key", ""),
                base_url=row.base_url,
                options={**row.options, **secret.get("options", {})},
                models=tuple(row.models),
                weight=row.weight,
            )
        )
    return out


async def set_credential(
    session: AsyncSession,
    box: SecretBox,
    *,
    name: str,
    provider: str,
    registry: ProviderRegistry,
    egress: EgressPolicy,
    api_key: str | None = None,
    base_url: str = "",
    options: dict[str, Any] | None = None,
    models: list[str] | None = None,
    weight: float = 1.0,
) -> ProviderCredential:
    """Create or replace the credential ``name``.

    An omitted ``api_key`` keeps the stored secret only while requests keep going to the
    same place: a change of destination (``base_url``, a provider kind or an option that
    changes the URL) needs the secret again, or it would be sent wherever the writer
    points it. The destination must pass the tenant's egress policy.
    """
    if provider not in registry.kinds:
        raise InvalidInput(
            f"unknown provider {provider!r}; known: {', '.join(sorted(registry.kinds))}",
            field="provider",
        )
    if registry.kinds[provider].server_only:
        raise InvalidInput(
            f"provider {provider!r} is set up by the server itself (fine-tuned models)",
            field="provider",
        )
    options = dict(options or {})
    region = options.get("region")
    if region is not None and not (isinstance(region, str) and _REGION.fullmatch(region)):
        raise InvalidInput("options.region: a region name like us-east-1", field="options.region")
    secret_opts = {k: options.pop(k) for k in list(options) if k in SECRET_OPTIONS}
    destination = _destination(registry, provider, base_url, options)
    if destination is not None:
        egress.check_url(destination, field="base_url")
    row = await session.scalar(select(ProviderCredential).where(ProviderCredential.name == name))
    created = row is None
    old: dict[str, Any] = {}
    if row is None:
        row = ProviderCredential(name=name, provider=provider)
        session.add(row)
    else:
        old = box.open(row.secret)
        moved = destination != _destination(registry, row.provider, row.base_url, row.options)
        if moved and api_key is None and (old.get("api_key") or old.get("options")):
            raise InvalidInput(
                "api_key: changing where this credential's requests go (base_url, provider "
                "or region) needs its secret again; send api_key (and any secret options) "
                "with the change",
                field="api_key",
            )
        if moved:
            old = {}  # nothing stored follows the credential to its new destination
    key = api_key if api_key is not None else old.get("api_key", "")
    row.provider = provider
    row.base_url = base_url
    row.secret = box.seal({"api_key": key, "options": secret_opts or old.get("options", {})})
    row.key_hint = key[-4:] if len(key) >= 12 else ""
    row.options = options
    row.models = list(models or [])
    row.weight = weight
    await flush_unique(session, "provider credential", name)
    await record(
        session,
        "gateway.credential.created" if created else "gateway.credential.updated",
        row.id,
        detail={"name": name, "provider": provider, "base_url": base_url, "key_set": bool(key)},
    )
    return row


_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,4}")


def _destination(
    registry: ProviderRegistry, provider: str, base_url: str, options: dict[str, Any]
) -> str | None:
    """Where a credential with these settings sends its requests (None: nowhere)."""
    kind = registry.kinds.get(provider)
    if kind is None:
        return base_url
    cred = Credential(name="-", provider=provider, base_url=base_url, options=options)
    return kind(cred, ClientPool()).destination()


async def delete_credential(session: AsyncSession, name_or_id: str) -> ProviderCredential:
    row = await session.scalar(
        select(ProviderCredential).where(
            (ProviderCredential.name == name_or_id) | (ProviderCredential.id == name_or_id)
        )
    )
    if row is None:
        raise NotFound(f"provider credential {name_or_id!r} not found")
    await session.delete(row)
    await record(session, "gateway.credential.deleted", row.id, detail={"name": row.name})
    return row


async def get_config(session: AsyncSession) -> RouterConfig:
    row = await session.scalar(select(GatewayConfig))
    return RouterConfig.model_validate(row.config if row else {})


async def set_config(session: AsyncSession, config: RouterConfig) -> RouterConfig:
    row = await session.scalar(select(GatewayConfig))
    if row is None:
        row = GatewayConfig()
        session.add(row)
    row.config = config.model_dump(exclude_defaults=True)
    await session.flush()
    await record(session, "gateway.config.updated", row.tenant_id, detail=row.config)
    return config
