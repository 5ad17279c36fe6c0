"""``musubi providers set|list|delete`` and ``musubi models list``: the gateway's
per-tenant provider credentials and the models a tenant can call.

A running server picks changes up within its routing cache time (5 s).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from musubi.runtime import AppState

__all__ = ["models", "providers"]

COLUMNS = ("name", "provider", "base_url", "api_key", "models", "weight")


def _box(state: AppState) -> Any:
    from musubi.gateway.secrets import SecretBox

    return SecretBox.load(state.settings.home)


@click.group()
def providers() -> None:
    """Manage provider credentials of a tenant (secrets are stored encrypted)."""


@providers.command("list")
@tenant_option
@json_option
def list_providers(tenant: str | None, as_json: bool) -> None:
    """List credentials (never their secrets)."""
    from musubi.gateway import service

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            return [service.public_credential(r) for r in await service.list_credentials(s)]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=COLUMNS)


@providers.command("set")
@click.argument("name")
@click.option("--provider", required=True, help="openai, azure, anthropic, gemini, bedrock…")
@click.option(
    "--api-key",
    envvar="MUSUBI_PROVIDER_API_KEY",
    default=None,
    help="The secret (or env MUSUBI_PROVIDER_API_KEY). Omitted: keep the old one.",
)
@click.option("--base-url", default="", help="Endpoint; empty: the provider's own.")
@click.option("--option", "options", multiple=True, help="KEY=VALUE (api_version, region…)")
@click.option("--model", "models", multiple=True, help="Serve only these models (repeatable).")
@click.option("--weight", type=float, default=1.0, help="Load-balancing weight.")
@tenant_option
@json_option
def set_provider(
    name: str,
    provider: str,
    api_key: str | None,
    base_url: str,
    options: tuple[str, ...],
    models: tuple[str, ...],
    weight: float,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Create or replace the credential NAME."""
    from musubi.context import current_tenant_id
    from musubi.gateway import service
    from musubi.gateway.providers.registry import ProviderRegistry

    opts: dict[str, Any] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--option")
        opts[key] = value

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            row = await service.set_credential(
                s,
                _box(state),
                name=name,
                provider=provider,
                registry=ProviderRegistry(),
                egress=state.settings.egress_rules.for_tenant(current_tenant_id() or ""),
                api_key=api_key,
                base_url=base_url,
                options=opts,
                models=list(models),
                weight=weight,
            )
            return service.public_credential(row)

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@providers.command("delete")
@click.argument("name")
@tenant_option
@json_option
def delete_provider(name: str, tenant: str | None, as_json: bool) -> None:
    """Delete the credential NAME."""
    from musubi.gateway import service

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            return service.public_credential(await service.delete_credential(s, name))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@click.group()
def models() -> None:
    """The model catalogue and what a tenant can call."""


@models.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also models with no credential set.")
@tenant_option
@json_option
def list_models(show_all: bool, tenant: str | None, as_json: bool) -> None:
    """Models with provider, context window, prices per 1M tokens and whether usable."""
    from musubi.context import current_tenant_id
    from musubi.gateway.listing import list_models
    from musubi.gateway.registry import GatewayParts
    from musubi.runtime import credential_sources

    async def work(state: AppState) -> list[dict[str, Any]]:
        # The routing table exactly as the server builds it, implicit credentials included.
        parts = GatewayParts.open(state.db, state.settings.home, sources=credential_sources())
        try:
            table = await parts.table(current_tenant_id() or "")
        finally:
            await parts.close()
        rows = [m.row() for m in list_models(table, include_unusable=show_all)]
        return [{**r, "capabilities": ",".join(r["capabilities"] or ())} for r in rows]

    rows = run_as_operator(work, tenant=tenant)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    cols = (
        "name",
        "provider",
        "context_window",
        "input_price_per_1m",
        "output_price_per_1m",
        "capabilities",
        "usable",
    )
    emit(rows, as_json=False, columns=cols)
