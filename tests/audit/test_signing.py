"""The signing key file: written whole, once, even by processes starting together."""

from __future__ import annotations

import stat
from pathlib import Path

from musubi.audit.signing import Signer


def test_create_writes_a_private_key_and_a_second_create_reuses_it(tmp_path: Path) -> None:
    path = tmp_path / "home" / "audit-signing.pem"
    first = Signer.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = Signer.create(path)  # another process that lost the race
    assert second.key_id == first.key_id
    assert Signer.from_pem(path.read_bytes()).key_id == first.key_id
    assert [p.name for p in path.parent.iterdir()] == ["audit-signing.pem"]  # no leftovers
