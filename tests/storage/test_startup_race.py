"""Several processes starting together on one empty database: all come up, one root tenant.

Each starter is its own Python process (Alembic's ``context`` is process-global, so
threads would not be faithful), importing everything first and then released at once,
so the migrations and the bootstrap really run side by side.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from musubi.access.models import RoleAssignment
from musubi.context import system_scope
from musubi.identity.models import ApiKey, User
from musubi.storage.database import Database
from musubi.storage.migrate import current_revision
from musubi.storage.tenants import Tenant

STARTERS = 4
TIMEOUT_S = 120

STARTER = """
import asyncio, sys
from musubi.api.app import open_state
from musubi.settings import Settings

async def main() -> None:
    settings = Settings()
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()  # the go signal: every starter is imported and waiting
    state = await open_state(settings, announce=False)
    await state.close()

asyncio.run(main())
"""


def _signing_key() -> str:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


async def _start_together(database_url: str, tmp_path: Path) -> list[str]:
    """Run open_state in STARTERS processes released together; the failures' stderr."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    key = _signing_key()
    procs = []
    for i in range(STARTERS):
        env = {
            **base,
            "MUSUBI_DATABASE_URL": database_url,
            "MUSUBI_HOME": str(tmp_path / f"host{i}"),  # one home per host, as on machines
            "MUSUBI_AUDIT_SIGNING_KEY": key,
        }
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                STARTER,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    try:
        for p in procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), TIMEOUT_S)
            assert line == b"ready\n", line
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
        await asyncio.gather(*(p.stdin.drain() for p in procs if p.stdin is not None))
        results = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)), TIMEOUT_S
        )
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    return [
        f"starter {i} exited {p.returncode}:\n{err.decode(errors='replace')[-2000:]}"
        for i, (p, (_, err)) in enumerate(zip(procs, results, strict=True))
        if p.returncode != 0
    ]


@pytest.mark.slow
async def test_processes_starting_together_all_succeed(
    empty_database_url: str, tmp_path: Path
) -> None:
    database_url = empty_database_url  # they race to migrate it, too
    failures = await _start_together(database_url, tmp_path)
    assert not failures, "\n".join(failures)

    db = Database(database_url)
    try:
        assert await current_revision(db) is not None
        with system_scope():
            async with db.read() as s:
                tenants = (await s.scalars(select(Tenant))).all()
                users = await s.scalar(select(func.count()).select_from(User))
                keys = await s.scalar(select(func.count()).select_from(ApiKey))
                owners = await s.scalar(
                    select(func.count())
                    .select_from(RoleAssignment)
                    .where(RoleAssignment.role == "owner")
                )
    finally:
        await db.dispose()
    assert [(t.name, t.is_root) for t in tenants] == [("default", True)]
    assert (users, keys, owners) == (1, 1, 1)
