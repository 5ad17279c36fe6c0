"""API key format: ``msk_<prefix>_<secret>``.

The prefix (8 hex chars) is stored in clear to find the row; only a SHA-256 of the whole
key is stored (keys are 256-bit random, so a fast hash is the right tool, not a password
hash). Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["NewKey", "generate", "hash_token", "matches", "parse_prefix"]

_DUMMY_HASH = hashlib.sha256(b"musubi-no-such-key").hexdigest()


class NewKey:
    def __init__(self, token: str) -> None:
        prefix = parse_prefix(token)
        if prefix is None:
            raise ValueError("a MUSUBI key looks like msk_<8 hex chars>_<secret of 32+ chars>")
        self.token = token
        self.prefix = prefix
        self.secret_hash = hash_token(token)


def generate() -> NewKey:
    return NewKey(f"msk_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}")


def parse_prefix(token: str) -> str | None:
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != "msk" or len(parts[1]) != 8:
        return None
    secret = token[len("msk_") + 9 :]
    if len(secret) < 32 or not all(c in "0123456789abcdef" for c in parts[1]):
        return None
    return parts[1]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str, stored_hash: str | None) -> bool:
    """Constant-time check; with no stored hash, spends the same time and says no."""
    candidate = hash_token(token)
    ok = hmac.compare_digest(candidate, stored_hash or _DUMMY_HASH)
    return ok and stored_hash is not None
