"""Encryption of provider secrets at rest (Fernet).

The key comes from ``MUSUBI_GATEWAY_SECRET_KEY`` (a Fernet key) or, if unset, from
``<home>/gateway-secret.key``, generated once with mode 0600 — like the audit signing key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from musubi.errors import MusubiError

__all__ = ["SecretBox"]


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def load(cls, home: Path) -> SecretBox:
        env = os.environ.get("MUSUBI_GATEWAY_SECRET_KEY")
        if env:
            return cls(env.encode())
        path = home / "gateway-secret.key"
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def seal(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        if not token:
            return {}
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise MusubiError("a provider secret cannot be decrypted with this key") from exc
        return data
