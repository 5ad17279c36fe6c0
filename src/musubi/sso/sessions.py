"""Browser sessions: cookies, CSRF tokens, idle and absolute expiry, revocation.

The session cookie (``musubi_session``) is HttpOnly, SameSite=Lax, and Secure whenever
the server is reached over TLS. A second cookie, ``musubi_csrf``, is readable by the
dashboard's JavaScript, which echoes it in ``X-CSRF-Token`` on every state-changing call
(double submit, bound to the session: only its hash is stored with the session). Only
SHA-256 hashes of both tokens are kept in the database.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from musubi.audit.service import record
from musubi.context import current_tenant_id
from musubi.errors import PermissionDenied
from musubi.identity.keys import hash_token
from musubi.identity.sign_in import SsoPolicy, SsoSession
from musubi.storage.base import utcnow
from musubi.storage.queries import get_one

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "check_csrf",
    "clear_cookies",
    "create_session",
    "get_policy",
    "list_sessions",
    "revoke_session",
    "revoke_user_sessions",
    "set_cookies",
]

SESSION_COOKIE = "musubi_session"
CSRF_COOKIE = "musubi_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_policy(session: AsyncSession) -> SsoPolicy:
    """The bound tenant's SSO policy (the defaults when none was saved)."""
    tenant_id = current_tenant_id()
    found = await session.get(SsoPolicy, tenant_id) if tenant_id else None
    return found or SsoPolicy(
        tenant_id=tenant_id,
        require_sso=False,
        scim_manages_owners=False,
        idle_minutes=60,
        absolute_hours=12,
    )


async def create_session(
    session: AsyncSession, user_id: str, *, idp_id: str | None, client_ip: str | None
) -> tuple[SsoSession, str, str]:
    """A new session; returns it with its token and CSRF token (never stored in clear)."""
    policy = await get_policy(session)
    token, csrf = f"mss_{secrets.token_urlsafe(32)}", secrets.token_urlsafe(24)
    now = utcnow()
    row = SsoSession(
        user_id=user_id,
        token_hash=hash_token(token),
        csrf_hash=hash_token(csrf),
        idp_id=idp_id,
        expires_at=now + timedelta(hours=policy.absolute_hours),
        last_seen_at=now,
        client_ip=client_ip,
    )
    session.add(row)
    await session.flush()
    await record(session, "sso.session.create", row.id, detail={"user_id": user_id})
    return row, token, csrf


async def list_sessions(session: AsyncSession, user_id: str | None = None) -> list[SsoSession]:
    query = select(SsoSession).where(SsoSession.revoked_at.is_(None))
    if user_id is not None:
        query = query.where(SsoSession.user_id == user_id)
    return list((await session.scalars(query.order_by(SsoSession.created_at))).all())


async def revoke_session(session: AsyncSession, session_id: str, *, reason: str) -> SsoSession:
    row = await get_one(session, SsoSession, session_id, "session")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await record(session, "sso.session.revoke", row.id, detail={"reason": reason})
    return row


async def revoke_user_sessions(session: AsyncSession, user_id: str, *, reason: str) -> int:
    result = await session.execute(
        update(SsoSession)
        .where(SsoSession.user_id == user_id, SsoSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        await record(
            session, "sso.session.revoke_all", user_id, detail={"reason": reason, "count": count}
        )
    return count


def _is_tls(request: Request, public_url: str | None) -> bool:
    if public_url:
        return public_url.startswith("https://")
    return request.url.scheme == "https"


def set_cookies(
    response: Response,
    request: Request,
    *,
    token: str,
    csrf: str,
    max_age: int,
    public_url: str | None,
) -> None:
    secure = _is_tls(request, public_url)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax", secure=secure
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, httponly=False, samesite="lax", secure=secure
    )


def clear_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)


def _same_origin(request: Request, origin: str, public_url: str | None) -> bool:
    expected = (public_url or str(request.base_url)).rstrip("/")
    return origin.rstrip("/") == "/".join(expected.split("/")[:3])


def check_csrf(request: Request, csrf_hash: str, public_url: str | None) -> None:
    """Refuse a state-changing cookie call without this session's CSRF token, or from
    another site's page (``Origin`` header)."""
    origin = request.headers.get("origin")
    if origin and not _same_origin(request, origin, public_url):
        raise PermissionDenied("csrf", f"CSRF check failed: request from origin {origin!r}")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(hash_token(sent), csrf_hash):
        raise PermissionDenied(
            "csrf",
            "CSRF check failed: send the musubi_csrf cookie's value in the X-CSRF-Token header",
        )
