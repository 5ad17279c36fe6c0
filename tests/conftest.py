"""Shared fixtures: a database on each backend, a real server on loopback, API clients.

Every test that takes ``backend`` runs on SQLite and on PostgreSQL. ``database_url`` is a
fresh database copied from a template migrated once per backend per run (a file copy on
SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL), so a test starts at the head
revision without running the migrations; ``empty_database_url`` is one with no tables, for
the tests of the migrations themselves. PostgreSQL databases are owned by a role that is
neither superuser nor BYPASSRLS, so the row-level security policies really apply.
Set MUSUBI_TEST_POSTGRES_URL to point elsewhere; MUSUBI_REQUIRE_POSTGRES=1 (set in CI)
turns "PostgreSQL is not reachable" from a skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from musubi.api.app import create_app
from musubi.egress.clients import tls_context
from musubi.identity import keys
from musubi.runtime import AppState
from musubi.settings import Settings
from tests.loopback import LoopbackServer

ADMIN_URL = os.environ.get("MUSUBI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
APP_ROLE = "musubi_app"
LOOPBACK_FAKES = "127.0.0.1"  # where the fake upstreams and IdPs listen
T = TypeVar("T")


def _pg_available() -> bool:
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return False
    url = httpx.URL(ADMIN_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=1):
            return True
    except OSError:
        return False


PG_AVAILABLE = _pg_available()


def _pg_param() -> Any:
    if PG_AVAILABLE or os.environ.get("MUSUBI_REQUIRE_POSTGRES") == "1":
        return pytest.param("postgres", marks=pytest.mark.postgres)
    return pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.skip("no PostgreSQL")])


async def _admin(sql: str, database: str | None = None) -> None:
    import asyncpg

    url = ADMIN_URL.replace("postgresql+asyncpg", "postgresql")
    if database:
        url = url.rsplit("/", 1)[0] + "/" + database
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_pg_database(template: str | None = None) -> str:
    """A new database owned by the non-superuser app role, empty or a copy of the database
    ``template``; returns its app URL."""
    name = f"musubi_t_{secrets.token_hex(6)}"
    await _admin(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN "
        f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; END IF; END $$;"
    )
    # FILE_COPY copies the template's files: for a database this small, half the time of the
    # default WAL_LOG strategy (0.11 s against 0.21 s a copy, measured on PostgreSQL 15 here)
    copy = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
    await _admin(f"CREATE DATABASE {name}{copy} OWNER {APP_ROLE}")
    host = httpx.URL(ADMIN_URL.replace("postgresql+asyncpg", "postgresql"))
    return f"postgresql+asyncpg://{APP_ROLE}@{host.host}:{host.port or 5432}/{name}"


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    await _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", _pg_param()])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _migrate(url: str) -> None:
    from musubi.storage.database import Database
    from musubi.storage.migrate import upgrade

    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


def _in_thread(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end on a loop of its own, in a thread: session templates are
    made on first use, which may be inside a test's running loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the head revision, made once per run."""
    path = tmp_path_factory.mktemp("template") / "musubi.db"
    _in_thread(lambda: _migrate(f"sqlite+aiosqlite:///{path}"))
    assert not Path(f"{path}-wal").exists()  # closed cleanly: the file is the whole database
    return path


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str]:
    """A PostgreSQL database at the head revision, made once per run (on first use)."""
    url = _in_thread(create_pg_database)
    _in_thread(lambda: _migrate(url))
    yield url.rsplit("/", 1)[1]
    _in_thread(lambda: drop_pg_database(url))


@pytest.fixture
async def database_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """A fresh database at the head revision: a copy of the run's migrated template."""
    if backend == "sqlite":
        path = tmp_path / "musubi.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = await create_pg_database(template=request.getfixturevalue("_pg_template"))
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def empty_database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database with no tables (for the tests of the migrations)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        max_body_bytes=64 * 1024,
        bootstrap_key=None,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Api:
    """A running server and the root tenant's owner key."""

    base_url: str
    owner_key: str
    state: AppState

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        """A client of the server (sharing the process's TLS context: building one per
        client costs ~50 ms, for a plain-HTTP loopback server)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=30, verify=tls_context()
        )


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """The app on a loopback port. The root owner's key is given in ``Settings``, as an
    operator may with MUSUBI_BOOTSTRAP_KEY (what the first start prints is tested in
    tests/cli/test_management.py and tests/cli/test_serve.py)."""
    if settings.bootstrap_key is None:
        settings.bootstrap_key = SecretStr(keys.generate().token)
    key = settings.bootstrap_key.get_secret_value()
    app = create_app(settings)
    port = _free_port()
    # Idle keep-alive connections are kept for a minute, not uvicorn's 5 s: on a loaded CI
    # machine a starved loop could close a pooled connection just as the test sent its next
    # request on it (httpx.ReadError), a race of keep-alive itself, not of the code under test.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=60,
    )
    server = LoopbackServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield Api(f"http://127.0.0.1:{port}", key, app.state.musubi)
    finally:
        server.stop()
        await task


@pytest.fixture
async def owner(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client(api.owner_key) as client:
        yield client


@pytest.fixture(autouse=True)
def _no_home_leak(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Never touch the developer's ~/.musubi from a test. The fake upstreams and IdPs run
    on 127.0.0.1, which the egress policy refuses by default: allow that one address."""
    monkeypatch.setenv("MUSUBI_HOME", str(tmp_path / "env-home"))
    monkeypatch.setenv("MUSUBI_EGRESS_ALLOW", LOOPBACK_FAKES)
    monkeypatch.delenv("MUSUBI_DATABASE_URL", raising=False)
    yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a test marked slow run first: under ``scripts/check``'s processes (one file
    per process at a time) a two-minute file started last would be the run's tail, alone on
    one process while the others are idle. The sort is stable, so a file's tests keep their
    order, and deterministic, as pytest-xdist requires of every process's collection."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
