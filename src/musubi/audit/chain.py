"""The hash chain itself: how an event is hashed and what a head or anchor signs.

Pure functions, no I/O, so the rules are easy to read and test.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["GENESIS", "anchor_message", "event_hash", "head_message"]

GENESIS = "0" * 64
"""``prev_hash`` of a tenant's first event."""


def event_hash(
    *,
    prev_hash: str,
    tenant_id: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    request_id: str | None,
    client_ip: str | None,
    detail: dict[str, Any],
) -> str:
    """SHA-256 over the previous hash and a canonical JSON of every field of the event."""
    body = json.dumps(
        [
            tenant_id,
            seq,
            at.astimezone(UTC).isoformat(timespec="microseconds"),
            actor,
            action,
            target,
            outcome,
            request_id,
            client_ip,
            detail,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def head_message(tenant_id: str, seq: int, hash_: str) -> str:
    return f"musubi-audit-head\n{tenant_id}\n{seq}\n{hash_}"


def anchor_message(tenant_id: str, seq: int, hash_: str) -> str:
    return f"musubi-audit-anchor\n{tenant_id}\n{seq}\n{hash_}"
