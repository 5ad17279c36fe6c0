"""What the audit-log attacker scenarios share: the operator's CLI and the database writer.

The database writer holds the database's credentials but not the signing key: it writes
plain SQL through SQLAlchemy, in system scope (as a superuser or the table owner would),
and can recompute SHA-256 hashes but cannot sign.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

from sqlalchemy import select, text, update

from musubi.audit.chain import event_hash
from musubi.audit.models import AuditEvent, AuditHead
from musubi.context import system_scope
from musubi.settings import Settings
from musubi.storage.database import Database


async def musubi(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``musubi ARGS`` as the operator does: a new process on the server's home."""
    env = {
        **os.environ,
        "MUSUBI_HOME": str(settings.home),
        "MUSUBI_DATABASE_URL": settings.database_url or "",
    }
    command = [sys.executable, "-c", "from musubi.cli.main import main; main()", *args]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
    )


async def sql(db: Database, statement: str, **params: Any) -> list[Any]:
    """Plain SQL as the database writer; returns the rows of a SELECT."""
    with system_scope():
        async with db.transaction() as s:
            result = await s.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []


async def rehash_from(db: Database, tenant_id: str, seq: int) -> str:
    """Recompute the hashes of ``tenant_id``'s events from ``seq`` on and point the head at
    the new last hash: all a database writer can do (it cannot sign). Returns that hash."""
    events = AuditEvent.__table__
    with system_scope():
        async with db.transaction() as s:
            rows = (
                await s.execute(
                    select(events).where(events.c.tenant_id == tenant_id).order_by(events.c.seq)
                )
            ).all()
            prev = next(r.prev_hash for r in rows if r.seq == seq)
            for r in rows:
                if r.seq < seq:
                    continue
                digest = event_hash(
                    prev_hash=prev,
                    tenant_id=tenant_id,
                    seq=r.seq,
                    at=r.at,
                    actor=r.actor,
                    action=r.action,
                    target=r.target,
                    outcome=r.outcome,
                    request_id=r.request_id,
                    client_ip=r.client_ip,
                    detail=r.detail,
                )
                await s.execute(
                    update(events).where(events.c.id == r.id).values(prev_hash=prev, hash=digest)
                )
                prev = digest
            heads = AuditHead.__table__
            await s.execute(update(heads).where(heads.c.tenant_id == tenant_id).values(hash=prev))
    return prev
