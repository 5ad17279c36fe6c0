"""Row-level security that the application's own database role cannot switch off.

Every tenant-scoped table has two policies (PostgreSQL):

* ``tenant_isolation`` (every role): a row is visible and writable only while the
  transaction's ``musubi.tenant_id`` setting names its tenant;
* ``system_scope`` (only the role that owns the schema): every row, while
  ``musubi.system`` is ``on``, which :mod:`musubi.storage.scoping` sets for
  :func:`~musubi.context.system_scope` work (key lookup, bootstrap, administration
  across tenants, retention).

Until now one policy allowed every row to *any* role that ran
``set_config('musubi.system', 'on')``, which the application role can do from raw SQL
(an injected statement, a leaked runtime credential). A GUC cannot be made secret, and
the schema owner can always disable row-level security (``ALTER TABLE … DISABLE``), so
the sound split is by role: deploy with ``MUSUBI_DATABASE_URL`` naming a runtime role
that does not own the tables, and ``MUSUBI_DATABASE_OWNER_URL`` the owner. Then
tenant-bound statements run as the runtime role, for which ``musubi.system`` means
nothing, and only system-scope transactions run as the owner
(:class:`~musubi.storage.database.Database` picks the connection by scope). With a single
URL the one role is the owner, and row-level security guards against the application's
own mistakes only (a warning says so at start).

What the runtime role can still do is claim another tenant with
``set_config('musubi.tenant_id', …)``: it serves every tenant, so it must be able to bind
any; tenant ids are random (64 bits) and are never listed to it across tenants.

:func:`secure` brings the policies of an existing database to this form (the tables are
found from their policies, so tables added by later migrations are covered as well) and
grants the runtime role what it needs; it runs after every upgrade and is cheap when
there is nothing to do.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from musubi.storage.database import Database

__all__ = ["secure"]

log = logging.getLogger("musubi.storage")

_TENANT = "{col} = current_setting('musubi.tenant_id', true)"
_SYSTEM = "current_setting('musubi.system', true) = 'on'"

# Tables whose tenant_isolation policy still admits musubi.system, or which lack a
# system_scope policy for the connected role.
_STALE = text(
    """
    SELECT p.tablename FROM pg_policies p
    WHERE p.schemaname = current_schema() AND p.policyname = 'tenant_isolation'
      AND (p.qual LIKE '%musubi.system%' OR NOT EXISTS (
        SELECT 1 FROM pg_policies s
        WHERE s.schemaname = p.schemaname AND s.tablename = p.tablename
          AND s.policyname = 'system_scope' AND current_user::name = ANY (s.roles)))
    ORDER BY p.tablename
    """
)
_OWNS_SCHEMA = text(
    "SELECT tableowner = current_user FROM pg_tables "
    "WHERE schemaname = current_schema() AND tablename = 'tenants'"
)


async def secure(db: Database) -> None:
    """Rewrite stale policies and grant the runtime role (as the schema owner)."""
    from musubi.storage.migrate import startup_lock

    async with startup_lock(db), db.owner_engine.begin() as conn:
        if not await conn.scalar(_OWNS_SCHEMA):
            return  # not the owner: `musubi db upgrade` run as the owner does this
        for (table,) in (await conn.execute(_STALE)).all():
            await _rewrite(conn, table)
        runtime = make_url(db.url).username
        if db.two_roles and runtime:
            await _grant(conn, runtime)
    if not db.two_roles:
        log.warning(
            "PostgreSQL: the server connects as the schema owner, which can switch "
            "row-level security off; set MUSUBI_DATABASE_URL to a runtime role and "
            "MUSUBI_DATABASE_OWNER_URL to the owner (docs/deploy.md)"
        )


async def _rewrite(conn: AsyncConnection, table: str) -> None:
    name = _ident(conn, table)
    tenant = _TENANT.format(col="id" if table == "tenants" else "tenant_id")
    for sql in (
        f"DROP POLICY IF EXISTS tenant_isolation ON {name}",
        f"CREATE POLICY tenant_isolation ON {name} USING ({tenant}) WITH CHECK ({tenant})",
        f"DROP POLICY IF EXISTS system_scope ON {name}",
        f"CREATE POLICY system_scope ON {name} TO CURRENT_USER "
        f"USING ({_SYSTEM}) WITH CHECK ({_SYSTEM})",
    ):
        await conn.execute(text(sql))


async def _grant(conn: AsyncConnection, role: str) -> None:
    who = _ident(conn, role)
    for sql in (
        f"GRANT USAGE ON SCHEMA public TO {who}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {who}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {who}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {who}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {who}",
    ):
        await conn.execute(text(sql))


def _ident(conn: AsyncConnection, name: str) -> str:
    preparer: Any = conn.dialect.identifier_preparer
    return str(preparer.quote_identifier(name))
