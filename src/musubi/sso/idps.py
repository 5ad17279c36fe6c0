"""Per-tenant IdP configuration and SSO policy; every change audited, secrets encrypted."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.audit.service import record
from musubi.context import current_tenant_id
from musubi.egress import EgressPolicy
from musubi.errors import InvalidInput
from musubi.identity.sign_in import IdpConfig, SsoPolicy
from musubi.sso.mapping import MappingConfig
from musubi.sso.saml import SamlSettings
from musubi.sso.secretbox import SecretBox
from musubi.sso.sessions import get_policy
from musubi.storage.queries import flush_unique, get_one

__all__ = [
    "create_idp",
    "delete_idp",
    "enabled_idp",
    "get_idp",
    "list_idps",
    "set_policy",
    "update_idp",
]

PROTOCOLS = ("oidc", "saml")


_DEV_HOSTS = ("127.0.0.1", "localhost", "::1")  # where a plain-http issuer is accepted


def _check_issuer(protocol: str, issuer: str, egress: EgressPolicy) -> None:
    """An OIDC issuer is a URL the server fetches: parsed (not compared as a string), https
    (plain http only on loopback, for development), and within the egress policy."""
    if protocol not in PROTOCOLS:
        raise InvalidInput(f"protocol must be one of {', '.join(PROTOCOLS)}", field="protocol")
    if not issuer.strip():
        raise InvalidInput("issuer (the SAML IdP's entity id) is required", field="issuer")
    if protocol != "oidc":
        return
    try:
        parts = urlsplit(issuer)
        host = parts.hostname
    except ValueError as exc:
        raise InvalidInput("issuer must be an https:// URL", field="issuer") from exc
    plain_dev = parts.scheme == "http" and host in _DEV_HOSTS and "@" not in parts.netloc
    if parts.scheme != "https" and not plain_dev:
        raise InvalidInput("issuer must be an https:// URL", field="issuer")
    if parts.query or parts.fragment:
        raise InvalidInput("issuer: an issuer URL has no query or fragment", field="issuer")
    egress.check_url(issuer, field="issuer")


def _mapping(mapping: dict[str, Any]) -> dict[str, Any]:
    return MappingConfig.model_validate(mapping).model_dump()


def _saml(protocol: str, value: dict[str, Any] | None) -> dict[str, Any]:
    """The SAML settings (SSO URL, signing certificates), checked; {} for OIDC."""
    if protocol != "saml":
        if value:
            raise InvalidInput("saml settings are only for protocol saml", field="saml")
        return {}
    if not value:
        raise InvalidInput("a SAML IdP needs saml.sso_url and saml.certificates", field="saml")
    try:
        return SamlSettings.model_validate(value).model_dump()
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors())
        raise InvalidInput(f"invalid saml settings: {problems}", field="saml") from exc


async def create_idp(
    session: AsyncSession,
    box: SecretBox,
    *,
    name: str,
    issuer: str,
    client_id: str,
    client_secret: str,
    protocol: str = "oidc",
    scopes: list[str] | None = None,
    mapping: dict[str, Any] | None = None,
    saml: dict[str, Any] | None = None,
    egress: EgressPolicy | None = None,
) -> IdpConfig:
    if protocol == "oidc" and not client_id:
        raise InvalidInput("an OIDC IdP needs a client_id", field="client_id")
    _check_issuer(protocol, issuer, egress or EgressPolicy())
    idp = IdpConfig(
        name=name,
        protocol=protocol,
        issuer=issuer,
        client_id=client_id,
        secret=box.seal(client_secret),
        scopes=scopes if scopes is not None else ["email", "profile"],
        mapping=_mapping(mapping or {}),
        saml=_saml(protocol, saml),
        enabled=True,
    )
    session.add(idp)
    await flush_unique(session, "identity provider", name)
    await record(
        session,
        "sso.idp.create",
        idp.id,
        detail={"name": name, "protocol": protocol, "issuer": issuer, "client_id": client_id},
    )
    return idp


async def list_idps(session: AsyncSession) -> list[IdpConfig]:
    return list((await session.scalars(select(IdpConfig).order_by(IdpConfig.name))).all())


async def enabled_idp(session: AsyncSession, protocol: str, name: str | None) -> IdpConfig | None:
    """The enabled IdP of this protocol named ``name`` (or the first by name when None)."""
    query = select(IdpConfig).where(IdpConfig.enabled.is_(True), IdpConfig.protocol == protocol)
    if name is not None:
        query = query.where(IdpConfig.name == name)
    return (await session.scalars(query.order_by(IdpConfig.name))).first()


async def get_idp(session: AsyncSession, idp_id: str) -> IdpConfig:
    return await get_one(session, IdpConfig, idp_id, "identity provider")


async def update_idp(
    session: AsyncSession,
    box: SecretBox,
    idp_id: str,
    changes: dict[str, Any],
    egress: EgressPolicy | None = None,
) -> IdpConfig:
    idp = await get_idp(session, idp_id)
    diff: dict[str, Any] = {}
    if "client_secret" in changes:
        idp.secret = box.seal(changes.pop("client_secret"))
        diff["client_secret"] = "(changed)"  # noqa: S105 (a marker, not a secret)
    if "mapping" in changes:
        changes["mapping"] = _mapping(changes["mapping"])
    if "saml" in changes:
        changes["saml"] = _saml(idp.protocol, changes["saml"])
    for field, value in changes.items():
        if getattr(idp, field) != value:
            diff[field] = {"from": getattr(idp, field), "to": value}
            setattr(idp, field, value)
    if "issuer" in changes:
        _check_issuer(idp.protocol, idp.issuer, egress or EgressPolicy())
    await flush_unique(session, "identity provider", changes.get("name"))
    if "enabled" in diff:
        await _keep_a_way_in(session)
    await record(session, "sso.idp.update", idp.id, detail=diff)
    return idp


async def delete_idp(session: AsyncSession, idp_id: str) -> None:
    idp = await get_idp(session, idp_id)
    await session.delete(idp)
    await session.flush()
    await _keep_a_way_in(session)
    await record(session, "sso.idp.delete", idp.id, detail={"name": idp.name})


async def _keep_a_way_in(session: AsyncSession) -> None:
    """Requiring SSO refuses the keys of human users (owners included): it needs an enabled
    identity provider to log in with, or the tenant's people are locked out."""
    if not (await get_policy(session)).require_sso:
        return
    enabled = await session.scalar(select(IdpConfig.id).where(IdpConfig.enabled.is_(True)))
    if enabled is None:
        raise InvalidInput(
            "require_sso needs an enabled identity provider: with none, no human user "
            "(owners included) could log in; add and enable one first, or turn require_sso off",
            field="require_sso",
        )


async def set_policy(session: AsyncSession, changes: dict[str, Any]) -> SsoPolicy:
    current = await get_policy(session)
    stored = await session.get(SsoPolicy, current_tenant_id())
    if stored is None:
        session.add(current)
    diff = {}
    for field, value in changes.items():
        if getattr(current, field) != value:
            diff[field] = {"from": getattr(current, field), "to": value}
            setattr(current, field, value)
    await session.flush()
    await _keep_a_way_in(session)
    await record(session, "sso.policy.update", current.tenant_id, detail=diff)
    return current
