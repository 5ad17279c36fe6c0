"""Encrypt IdP secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key is kept like the audit signing key: ``MUSUBI_SSO_SECRET_KEY``, or generated once
in ``<home>/sso-secret.key`` (mode 0600).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from musubi.errors import InvalidInput
from musubi.settings import Settings

__all__ = ["SecretBox", "load_secret_box"]


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode() if plain else ""

    def open(self, sealed: str) -> str:
        if not sealed:
            return ""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise InvalidInput(
                "stored IdP secret cannot be decrypted: was MUSUBI_SSO_SECRET_KEY changed?",
                field="client_secret",
            ) from exc


def _load_or_create(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def load_secret_box(settings: Settings) -> SecretBox:
    if settings.sso_secret_key is not None:
        return SecretBox(settings.sso_secret_key.get_secret_value().encode())
    return SecretBox(_load_or_create(settings.home / "sso-secret.key"))
