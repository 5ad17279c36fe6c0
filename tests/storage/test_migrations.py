from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from musubi.storage.database import Database
from musubi.storage.migrate import current_revision, upgrade
from musubi.storage.models import metadata


def _head() -> str:
    from alembic.script import ScriptDirectory

    from musubi.storage.migrate import _config

    head = ScriptDirectory.from_config(_config(None)).get_current_head()
    assert head is not None
    return head


async def test_migrations_run_from_empty_and_match_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert await current_revision(db) is None
        await upgrade(db)
        await upgrade(db)  # idempotent: a second start changes nothing
        assert await current_revision(db) == _head()
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
        assert set(metadata.tables) <= tables
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        await db.dispose()
