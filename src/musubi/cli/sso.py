"""``musubi sso idps|add|update|remove|policy|sessions|revoke``: SSO of a tenant.

A test login (what the IdP sends and how it maps) needs a browser: start it with
``POST /v1/sso/idps/{id}/test-login`` and open the returned URL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from musubi.cli.output import emit, json_option
from musubi.cli.runtime import run_as_operator, tenant_option

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from musubi.identity.sign_in import IdpConfig
    from musubi.runtime import AppState

__all__ = ["sso"]

COLUMNS = ("id", "name", "protocol", "issuer", "client_id", "enabled")


def _out(idp: IdpConfig) -> dict[str, Any]:
    return {c: getattr(idp, c) for c in (*COLUMNS, "scopes", "mapping", "saml")}


async def _resolve(session: AsyncSession, value: str) -> str:
    from sqlalchemy import or_, select

    from musubi.errors import NotFound
    from musubi.identity.sign_in import IdpConfig

    query = select(IdpConfig.id).where(or_(IdpConfig.id == value, IdpConfig.name == value))
    found = await session.scalar(query)
    if found is None:
        raise NotFound(f"identity provider {value!r} not found")
    return found


def _mapping(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--mapping") from exc
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--mapping")
    return value


def _saml(sso_url: str | None, certs: tuple[str, ...]) -> dict[str, Any]:
    if not sso_url or not certs:
        raise click.UsageError("a SAML IdP needs --sso-url and one or two --cert files")
    return {"sso_url": sso_url, "certificates": [Path(c).read_text() for c in certs]}


@click.group()
def sso() -> None:
    """Identity providers (OIDC, SAML), the SSO policy and browser sessions of a tenant."""


@sso.command("idps")
@tenant_option
@json_option
def list_idps(tenant: str | None, as_json: bool) -> None:
    """List identity providers."""
    from musubi.sso import idps

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            return [_out(i) for i in await idps.list_idps(s)]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=COLUMNS)


@sso.command("add")
@click.argument("name")
@click.option(
    "--issuer", required=True, help="OIDC: the issuer URL (discovery). SAML: the entity id."
)
@click.option(
    "--protocol",
    type=click.Choice(["oidc", "saml"]),
    default="oidc",
    help="OIDC or SAML 2.0.",
)
@click.option("--client-id", default="", help="OIDC client id.")
@click.option("--client-secret", default=None, help="OIDC; prompted if missing. Encrypted.")
@click.option("--scope", "scopes", multiple=True, help="Extra scopes (default: email profile).")
@click.option("--sso-url", default=None, help="SAML: the IdP's HTTP-Redirect SSO URL.")
@click.option(
    "--cert",
    "certs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="SAML: a PEM signing certificate file; give two during a key rollover.",
)
@click.option("--mapping", default=None, help='JSON, e.g. {"groups_claim": "realm_access.roles"}')
@tenant_option
@json_option
def add_idp(
    name: str,
    issuer: str,
    protocol: str,
    client_id: str,
    client_secret: str | None,
    scopes: tuple[str, ...],
    sso_url: str | None,
    certs: tuple[str, ...],
    mapping: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Add an OIDC or SAML identity provider called NAME."""
    from musubi.context import current_tenant_id
    from musubi.sso import idps
    from musubi.sso.secretbox import load_secret_box

    saml = _saml(sso_url, certs) if protocol == "saml" else None
    if protocol == "oidc" and client_secret is None:
        client_secret = click.prompt("Client secret", hide_input=True)

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            idp = await idps.create_idp(
                s,
                load_secret_box(state.settings),
                name=name,
                issuer=issuer,
                client_id=client_id,
                client_secret=client_secret or "",
                protocol=protocol,
                scopes=list(scopes) or None,
                mapping=_mapping(mapping),
                saml=saml,
                egress=state.settings.egress_rules.for_tenant(current_tenant_id() or ""),
            )
            return _out(idp)

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@sso.command("update")
@click.argument("idp")
@click.option("--mapping", default=None, help="New mapping (JSON).")
@click.option(
    "--enable/--disable", "enabled", default=None, help="Allow or stop logins through it."
)
@click.option("--sso-url", default=None, help="SAML: new SSO URL (give --cert too).")
@click.option(
    "--cert",
    "certs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="SAML: the signing certificates to trust from now on (one or two).",
)
@tenant_option
@json_option
def update_idp(
    idp: str,
    mapping: str | None,
    enabled: bool | None,
    sso_url: str | None,
    certs: tuple[str, ...],
    tenant: str | None,
    as_json: bool,
) -> None:
    """Change IDP (id or name): its mapping, SAML certificates, or enable/disable it."""
    from musubi.sso import idps
    from musubi.sso.secretbox import load_secret_box

    saml = _saml(sso_url, certs) if certs or sso_url else None
    raw = {"mapping": _mapping(mapping), "enabled": enabled, "saml": saml}
    changes = {k: v for k, v in raw.items() if v is not None}

    async def work(state: AppState) -> dict[str, Any]:
        async with state.db.transaction() as s:
            box = load_secret_box(state.settings)
            return _out(await idps.update_idp(s, box, await _resolve(s, idp), changes))

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@sso.command("remove")
@click.argument("idp")
@tenant_option
def remove_idp(idp: str, tenant: str | None) -> None:
    """Remove IDP (id or name)."""
    from musubi.sso import idps

    async def work(state: AppState) -> None:
        async with state.db.transaction() as s:
            await idps.delete_idp(s, await _resolve(s, idp))

    run_as_operator(work, tenant=tenant)
    click.echo(f"removed {idp}")


@sso.command("policy")
@click.option(
    "--require-sso/--allow-keys",
    "require_sso",
    default=None,
    help="Refuse the API keys of human users (service accounts keep theirs).",
)
@click.option(
    "--scim-manages-owners/--scim-leaves-owners",
    "scim_manages_owners",
    default=None,
    help="Let SCIM change, disable and delete owners (default: it leaves them alone).",
)
@click.option("--idle-minutes", type=int, default=None, help="A session ends after this idle time.")
@click.option(
    "--absolute-hours", type=int, default=None, help="A session ends this long after login."
)
@tenant_option
@json_option
def policy(
    require_sso: bool | None,
    scim_manages_owners: bool | None,
    idle_minutes: int | None,
    absolute_hours: int | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Show, or change, the tenant's SSO policy."""
    from musubi.sso import idps, sessions

    raw = {
        "require_sso": require_sso,
        "scim_manages_owners": scim_manages_owners,
        "idle_minutes": idle_minutes,
        "absolute_hours": absolute_hours,
    }
    changes = {k: v for k, v in raw.items() if v is not None}

    async def work(state: AppState) -> dict[str, Any]:
        if changes:
            async with state.db.transaction() as s:
                p = await idps.set_policy(s, changes)
        else:
            async with state.db.read() as s:
                p = await sessions.get_policy(s)
        return {k: getattr(p, k) for k in ("tenant_id", *raw)}

    emit(run_as_operator(work, tenant=tenant), as_json=as_json)


@sso.command("sessions")
@tenant_option
@json_option
def list_sessions(tenant: str | None, as_json: bool) -> None:
    """List active browser sessions."""
    from musubi.sso import sessions

    cols = ("id", "user_id", "client_ip", "created_at", "last_seen_at", "expires_at")

    async def work(state: AppState) -> list[dict[str, Any]]:
        async with state.db.read() as s:
            return [{c: getattr(r, c) for c in cols} for r in await sessions.list_sessions(s)]

    emit(run_as_operator(work, tenant=tenant), as_json=as_json, columns=cols)


@sso.command("revoke")
@click.argument("session_id")
@tenant_option
def revoke(session_id: str, tenant: str | None) -> None:
    """Revoke a browser session (other server processes notice within the auth cache TTL)."""
    from musubi.sso import sessions

    async def work(state: AppState) -> None:
        async with state.db.transaction() as s:
            await sessions.revoke_session(s, session_id, reason="revoked by the CLI")

    run_as_operator(work, tenant=tenant)
    click.echo(f"revoked {session_id}")
