"""A long-running server freezes what start-up left alive (full collections used to scan
~150,000 start-up objects, pausing every request for ~90 ms about once a second)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from musubi.api.app import create_app
from musubi.settings import Settings


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def test_a_server_freezes_its_start_up_objects(settings: Settings, restore_gc: None) -> None:
    app = create_app(settings.model_copy(update={"server_gc": True}))
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000  # modules, routes, models: never scanned again
        assert gc.get_threshold()[0] == 20_000
        assert gc.isenabled()  # cycles are still collected


async def test_an_embedded_app_leaves_the_collector_alone(
    settings: Settings, restore_gc: None
) -> None:
    assert not settings.server_gc  # off unless `musubi serve` (or MUSUBI_SERVER_GC) asks
    threshold = gc.get_threshold()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == threshold


def test_the_environment_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_SERVER_GC", "1")
    assert Settings().server_gc
