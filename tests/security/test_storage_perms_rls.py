"""The application's database role cannot switch row-level security off (PostgreSQL).

Before: the one role the server used owned the tables, and a single
``set_config('musubi.system', 'on')`` from raw SQL showed every tenant's rows (issue 14,
finding 15). Now the server runs tenant-bound statements as a runtime role that owns
nothing (MUSUBI_DATABASE_URL) and only system-scope work as the owner
(MUSUBI_DATABASE_OWNER_URL); for the runtime role ``musubi.system`` means nothing, and it
cannot alter the tables or their policies.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from musubi.settings import Settings
from tests.api.helpers import new_tenant, ok
from tests.conftest import PG_AVAILABLE, Api, _admin


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    if not PG_AVAILABLE:
        pytest.skip("no PostgreSQL")
    return str(request.param)


@pytest.fixture
async def runtime_url(database_url: str) -> AsyncIterator[str]:
    """A login role that owns nothing, for the same database (the owner is the fixture's)."""
    role = f"musubi_rt_{secrets.token_hex(4)}"
    await _admin(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS")
    try:
        yield database_url.replace("//musubi_app@", f"//{role}@", 1)
    finally:
        await _admin(f"DROP OWNED BY {role}", database=database_url.rsplit("/", 1)[1])
        await _admin(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def settings(database_url: str, runtime_url: str, tmp_path: pytest.TempPathFactory) -> Settings:
    return Settings(
        home=tmp_path / "home",  # type: ignore[operator]
        database_url=runtime_url,
        database_owner_url=database_url,
        max_body_bytes=64 * 1024,
        bootstrap_key=None,
    )


def _raw(url: str) -> str:
    return url.replace("postgresql+asyncpg", "postgresql")


async def test_the_runtime_role_cannot_bypass_row_level_security(
    api: Api, owner: httpx.AsyncClient, runtime_url: str, database_url: str
) -> None:
    # The server works with two roles: tenants, keys and tenant-bound objects.
    other, other_key = await new_tenant(owner, "tenant-b")
    ok(await owner.post("/v1/teams", json={"name": "root-team"}), 201)
    async with api.client(other_key) as b:
        ok(await b.post("/v1/teams", json={"name": "b-team"}), 201)
        assert [t["name"] for t in ok(await b.get("/v1/teams"))["items"]] == ["b-team"]

    conn = await asyncpg.connect(_raw(runtime_url))
    try:
        await conn.execute("SELECT set_config('musubi.system', 'on', false)")
        assert await conn.fetchval("SELECT count(*) FROM tenants") == 0
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == 0
        assert await conn.fetchval("SELECT count(*) FROM audit_events") == 0
        await conn.execute("SELECT set_config('musubi.tenant_id', $1, false)", other)
        assert await conn.fetchval("SELECT count(*) FROM teams") == 1  # its own tenant only
        for attack in (
            "ALTER TABLE teams DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE teams NO FORCE ROW LEVEL SECURITY",
            "DROP POLICY tenant_isolation ON teams",
            "CREATE POLICY open ON teams USING (true)",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(attack)
    finally:
        await conn.close()

    # The owner still sees across tenants in system scope (what the server's system work uses).
    conn = await asyncpg.connect(_raw(database_url))
    try:
        await conn.execute("SELECT set_config('musubi.system', 'on', false)")
        assert await conn.fetchval("SELECT count(*) FROM tenants") == 2
    finally:
        await conn.close()
