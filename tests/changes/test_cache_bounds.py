"""The per-process caches of tenant settings hold every tenant in use (issue 24): their
bound comes from ``Settings.cache_max_entries`` (100,000 by default), and a bound below
the keys (or tenants) in rotation would make every call reload its settings.

An authenticator built as the server builds it (``AppState.auth``), on a real database,
with keys created through the identity service; the change feed is fresh, so only the
bound can drop an entry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from musubi.context import bind_tenant, system_scope
from musubi.identity.service import create_key, create_user
from musubi.runtime import AppState, open_state
from musubi.settings import Settings
from musubi.tenancy import service

KEYS = 120


@pytest.fixture
async def tokens_and_state(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[list[str], AppState]]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        auth_cache_seconds=0.0,  # without the feed every call would read: only it keeps them
        cache_max_entries=request.param,
    )
    state = await open_state(settings, announce=False)
    state.changes.synced_at = float("inf")  # reads as "fresh" without a polling task
    try:
        with system_scope():
            async with state.db.transaction() as s:
                tenant = await service.create_tenant(s, "acme")
        tokens = []
        with bind_tenant(tenant.id):
            async with state.db.transaction() as s:
                user = await create_user(s, "dev")
                for i in range(KEYS):
                    tokens.append((await create_key(s, user.id, name=f"k{i}"))[1])
        yield tokens, state
    finally:
        await state.close()


async def _reads(state: AppState, tokens: list[str]) -> int:
    """Key lookups the authenticator runs for one call with each of ``tokens``."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "api_keys" in statement:
            statements.append(statement)

    engines = {state.db.engine.sync_engine, state.db.owner_engine.sync_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", seen)
    try:
        for token in tokens:
            await state.auth.authenticate(token)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", seen)
    return len(statements)


@pytest.mark.parametrize("tokens_and_state", [100_000], indirect=True)
async def test_every_key_in_rotation_stays_cached_under_the_default_bound(
    tokens_and_state: tuple[list[str], AppState],
) -> None:
    tokens, state = tokens_and_state
    assert Settings().cache_max_entries == 100_000  # the documented default
    await _reads(state, tokens)  # warm
    assert await _reads(state, tokens) == 0
    assert await _reads(state, tokens) == 0


@pytest.mark.parametrize("tokens_and_state", [100], indirect=True)
async def test_a_bound_below_the_keys_in_rotation_reloads_every_call(
    tokens_and_state: tuple[list[str], AppState],
) -> None:
    """What the bound must be set above: 120 keys in rotation through 100 entries, the
    least recently used dropped first, so each call finds its key gone."""
    tokens, state = tokens_and_state
    await _reads(state, tokens)
    assert await _reads(state, tokens) >= KEYS
