"""The hash chain itself: how an event is hashed and what a head or anchor signs.

Pure functions, no I/O, so the rules are easy to read and test.

A head is signed one of two ways. Alone (a transaction that moved one chain, an API
action): the signature is over :func:`head_message` and its ``proof`` is empty. In a
batch (a transaction that moved many chains, the usage ledger's flush of the calls of
many tenants): the heads' messages are the leaves of a Merkle tree, one signature covers
its root (:func:`batch_message`), and each head keeps its **inclusion proof**, the sibling
hashes from its leaf to the root (:func:`heads_tree`). Verifying it recomputes the root
from the head and its proof (:func:`root_of`) and checks the signature over that root: as
strong as a signature of its own (forging a head means finding a second preimage of
SHA-256), one Ed25519 signature per flush instead of one per tenant (issue 24), and a
head's proof shows nothing of the other tenants' heads but opaque hashes. Leaves and
inner nodes are hashed with different prefixes (RFC 6962), so a node cannot pass for a
head.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "GENESIS",
    "anchor_message",
    "batch_message",
    "event_hash",
    "head_leaf",
    "head_message",
    "heads_tree",
    "root_of",
]

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


def batch_message(root: bytes) -> str:
    """What one signature over a batch of heads signs: the root of their Merkle tree."""
    return f"musubi-audit-heads\n{root.hex()}"


def head_leaf(tenant_id: str, seq: int, hash_: str) -> bytes:
    return hashlib.sha256(b"\x00" + head_message(tenant_id, seq, hash_).encode()).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


_STEP = 1 + 64  # "L" or "R" (the side the sibling is on), then its hash in hex


def heads_tree(leaves: list[bytes]) -> tuple[bytes, list[str]]:
    """The root of the Merkle tree over ``leaves`` and each leaf's inclusion proof.

    A proof is its steps from the leaf up, each ``L`` or ``R`` (the sibling's side) and
    the sibling's hash in hex; an odd node at the end of a level goes up unchanged.
    """
    if not leaves:
        raise ValueError("a tree of no heads")
    level = list(leaves)
    where = list(range(len(leaves)))  # each leaf's index in the current level
    proofs: list[list[str]] = [[] for _ in leaves]
    while len(level) > 1:
        steps = [("R" if i % 2 else "L") + node.hex() for i, node in enumerate(level)]
        for k, i in enumerate(where):
            j = i ^ 1
            if j < len(level):
                proofs[k].append(steps[j])
            where[k] = i // 2
        pairs = range(0, len(level) - 1, 2)
        up = [_node(level[i], level[i + 1]) for i in pairs]
        if len(level) % 2:
            up.append(level[-1])
        level = up
    return level[0], ["".join(p) for p in proofs]


def root_of(leaf: bytes, proof: str) -> bytes | None:
    """The root that ``proof`` leads ``leaf`` to (None for a malformed proof)."""
    if not proof or len(proof) % _STEP:
        return None
    node = leaf
    for at in range(0, len(proof), _STEP):
        side, sibling = proof[at], proof[at + 1 : at + _STEP]
        try:
            other = bytes.fromhex(sibling)
        except ValueError:
            return None
        if len(other) != 32:
            return None
        if side == "L":
            node = _node(other, node)
        elif side == "R":
            node = _node(node, other)
        else:
            return None
    return node
