from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from musubi.audit.signing import Signer
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade


@pytest.fixture
def signer() -> Signer:
    return Signer.generate()


@pytest.fixture
async def db(database_url: str, signer: Signer, tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(database_url, audit_signer=signer)
    await upgrade(database)
    try:
        yield database
    finally:
        await database.dispose()
