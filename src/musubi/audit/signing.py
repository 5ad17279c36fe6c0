"""The Ed25519 key that signs chain heads and retention anchors.

The private key lives outside the database (``<home>/audit-signing.pem`` or
``MUSUBI_AUDIT_SIGNING_KEY``), so someone who can write the database cannot forge a head.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["Signer", "signer_of"]

_REMEMBER = 4096  # valid (message, signature) pairs kept; a pair is valid for ever


class Signer:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]
        # (message, signature) pairs found valid: a batch of heads shares one signature,
        # so checking each head of a flush (or verify walking every chain) checks it once
        self._valid: dict[tuple[str, str], None] = {}

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> Signer:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the audit signing key must be an Ed25519 private key")
        return cls(key)

    @classmethod
    def create(cls, path: Path) -> Signer:
        """A new key, written to ``path`` (mode 0600); or the key another process wrote
        there first (processes starting together on an empty database).

        Only for a database with no signed head yet: a new key cannot continue a chain
        (see :func:`musubi.api.app.open_state`).
        """
        signer = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = signer._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Written whole under a private name, then linked into place: no reader ever
        # sees a partly written key, and of two processes exactly one key wins.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            os.link(tmp, path)
        except FileExistsError:
            return cls.from_pem(path.read_bytes())
        finally:
            tmp.unlink(missing_ok=True)
        return signer

    def sign(self, message: str) -> str:
        return self._key.sign(message.encode()).hex()

    def verify(self, message: str, signature: str) -> bool:
        if (message, signature) in self._valid:
            return True
        try:
            self.public_key.verify(bytes.fromhex(signature), message.encode())
        except (InvalidSignature, ValueError):
            return False
        if len(self._valid) >= _REMEMBER:
            self._valid.clear()
        self._valid[(message, signature)] = None
        return True


def signer_of(session: AsyncSession) -> Signer:
    signer = session.info.get("audit_signer")
    if not isinstance(signer, Signer):
        raise RuntimeError("this session has no audit signer; open it through Database")
    return signer
