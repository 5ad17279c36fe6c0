from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from musubi.schema import metadata
from musubi.storage.database import Database
from musubi.storage.migrate import current_revision, head_revision, upgrade


def _head() -> str:
    from alembic.script import ScriptDirectory

    from musubi.storage.migrate import _config

    head = ScriptDirectory.from_config(_config(None)).get_current_head()
    assert head is not None
    return head


async def test_migrations_run_from_empty_and_match_the_models(empty_database_url: str) -> None:
    db = Database(empty_database_url)
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


def test_the_head_read_from_the_files_is_alembics() -> None:
    assert head_revision() == _head()


def test_an_up_to_date_database_starts_without_loading_alembic(tmp_path: Path) -> None:
    """Each server start checks the schema; when it is current, Alembic (about 10 MB of
    resident memory per worker) is not imported at all."""
    script = (
        "import asyncio, sys\n"
        "from musubi.storage.database import Database\n"
        "from musubi.storage.migrate import upgrade\n"
        f"db = Database('sqlite+aiosqlite:///{tmp_path}/m.db')\n"
        "async def main():\n"
        "    await upgrade(db)\n"
        "    await db.dispose()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert first.stdout.strip() == "True", first.stderr  # a new database: migrated
    assert second.stdout.strip() == "False", second.stderr
