"""``musubi db upgrade|current``: database migrations."""

from __future__ import annotations

import asyncio

import click

__all__ = ["db"]


@click.group()
def db() -> None:
    """Database migrations (they also run on every start)."""


@db.command()
@click.option("--revision", default="head", show_default=True, help="Migration to upgrade to.")
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    from musubi.runtime import load_signer
    from musubi.settings import Settings
    from musubi.storage.database import Database
    from musubi.storage.migrate import current_revision
    from musubi.storage.migrate import upgrade as do_upgrade
    from musubi.storage.private import private_dir

    settings = Settings()
    private_dir(settings.home)

    async def main() -> str | None:
        database = Database(
            settings.effective_database_url,
            owner_url=settings.database_owner_url,
            audit_signer=load_signer(settings),
        )
        try:
            await do_upgrade(database, revision)
            return await current_revision(database)
        finally:
            await database.dispose()

    click.echo(f"database at revision {asyncio.run(main())}")


@db.command()
def current() -> None:
    """Print the database's current revision."""
    from musubi.settings import Settings
    from musubi.storage.database import Database
    from musubi.storage.migrate import current_revision

    settings = Settings()

    async def main() -> str | None:
        database = Database(settings.effective_database_url, owner_url=settings.database_owner_url)
        try:
            return await current_revision(database)
        finally:
            await database.dispose()

    click.echo(asyncio.run(main()) or "(empty database)")
