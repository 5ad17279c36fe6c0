"""Upgrading a database with batches made before files had owners (migration 0009).

A batch's output and error files take the batch's project and creator, so the project
keys that ran the batch still read its results after the upgrade; other old files belong
to the tenant and to no one (tenant-wide readers only). On PostgreSQL the backfill runs
under the row-level security policies of every tenant.
"""

from __future__ import annotations

import sqlalchemy as sa

from musubi.storage.base import UTCDateTime, utcnow
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade


def _table(name: str, *columns: str) -> sa.TableClause:
    typed = {"created_at": UTCDateTime(), "updated_at": UTCDateTime()}
    return sa.table(name, *(sa.column(c, typed.get(c)) for c in columns))


async def test_old_batch_outputs_take_their_batchs_project_and_creator(
    empty_database_url: str,
) -> None:
    database_url = empty_database_url  # migrated step by step by the test
    db = Database(database_url)
    try:
        await upgrade(db, "0008")
        now = utcnow()
        tenant_columns = ("id", "name", "is_root", "audit_retention_days")
        tenants = _table("tenants", *tenant_columns, "created_at", "updated_at")
        files = _table("files", "tenant_id", "id", "purpose", "filename", "bytes", "created_at")
        batch_columns = ("tenant_id", "id", "endpoint", "input_file_id", "output_file_id")
        batch_columns += ("error_file_id", "completion_window", "status", "priority", "total")
        batches = _table("batches", *batch_columns, "user_id", "project_id", "actor", "created_at")
        async with db.engine.begin() as conn:
            if not db.is_sqlite:  # the test writes for a tenant, past RLS, as an operator would
                await conn.execute(sa.text("SELECT set_config('musubi.system', 'on', true)"))
            for tenant in ("ten_a", "ten_b"):
                await conn.execute(
                    sa.insert(tenants).values(
                        id=tenant,
                        name=tenant,
                        is_root=False,
                        audit_retention_days=365,
                        created_at=now,
                        updated_at=now,
                    )
                )
                for kind in ("in", "out", "err"):
                    await conn.execute(
                        sa.insert(files).values(
                            tenant_id=tenant,
                            id=f"file_{kind}_{tenant}",
                            purpose="batch" if kind == "in" else "batch_output",
                            filename=kind,
                            bytes=1,
                            created_at=now,
                        )
                    )
                await conn.execute(
                    sa.insert(batches).values(
                        tenant_id=tenant,
                        id=f"batch_{tenant}",
                        endpoint="/v1/chat/completions",
                        input_file_id=f"file_in_{tenant}",
                        output_file_id=f"file_out_{tenant}",
                        error_file_id=f"file_err_{tenant}",
                        completion_window="24h",
                        status="completed",
                        priority=0,
                        total=1,
                        user_id=f"usr_{tenant}",
                        project_id=f"prj_{tenant}",
                        actor="key:msk_test",
                        created_at=now,
                    )
                )
        await upgrade(db)
        async with db.engine.begin() as conn:
            if not db.is_sqlite:
                await conn.execute(sa.text("SELECT set_config('musubi.system', 'on', true)"))
            rows = (await conn.execute(sa.text("SELECT id, project_id, user_id FROM files"))).all()
        owners = {r.id: (r.project_id, r.user_id) for r in rows}
        for tenant in ("ten_a", "ten_b"):
            assert owners[f"file_out_{tenant}"] == (f"prj_{tenant}", f"usr_{tenant}")
            assert owners[f"file_err_{tenant}"] == (f"prj_{tenant}", f"usr_{tenant}")
            assert owners[f"file_in_{tenant}"] == (None, None)  # the tenant's, no one's
    finally:
        await db.dispose()
