"""Apply Alembic migrations programmatically (on start, and ``musubi db upgrade``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from musubi.storage.database import Database

__all__ = ["current_revision", "upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")


def _config(connection: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(_config(c), revision))


async def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
