"""Inclusion and consistency proofs as JSON documents, and checking one against a signed head.

An inclusion proof carries the entry itself (it is non-personal by construction), so whoever holds a
signed head can check that exactly this entry is entry ``index`` of the device's ledger::

    {"type": "inclusion", "index": 12, "size": 40, "entry": {...}, "leaf": "<hex>",
     "proof": ["<hex>", ...], "head": {<tree head>}}

    {"type": "consistency", "from": 20, "to": 40, "from_root": "<hex>", "to_root": "<hex>",
     "proof": ["<hex>", ...], "head": {<tree head of size 40>} | null}
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract import merkle
from contract.signing import canonical
from contract.tree_head import TreeHead
from kiosk.store.ledger import Ledger, LedgerError


def inclusion(ledger: Ledger, index: int, head: TreeHead) -> dict[str, Any]:
    """Entry ``index``'s proof against ``head`` (which must cover it)."""
    if index >= head.size:
        raise LedgerError(f"ledger: entry {index} is not covered by the head of size {head.size}")
    body = ledger.entry(index)
    return {
        "type": "inclusion",
        "index": index,
        "size": head.size,
        "entry": json.loads(body),
        "leaf": merkle.leaf_hash(body).hex(),
        "proof": [p.hex() for p in ledger.inclusion_proof(index, head.size)],
        "head": head.to_json(),
    }


def consistency(ledger: Ledger, old_size: int, new_size: int) -> dict[str, Any]:
    head = ledger.head_of_size(new_size)
    return {
        "type": "consistency",
        "from": old_size,
        "to": new_size,
        "from_root": ledger.root(old_size)[1].hex(),
        "to_root": ledger.root(new_size)[1].hex(),
        "proof": [p.hex() for p in ledger.consistency_proof(old_size, new_size)],
        "head": None if head is None else head.to_json(),
    }


def _hashes(values: object) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("proof must be a list of hex hashes")
    return [bytes.fromhex(v) for v in values]


def check(proof: dict[str, Any], head: TreeHead, key: Ed25519PublicKey) -> str | None:
    """Why ``proof`` does not hold against ``head`` signed by ``key``; ``None`` when it holds.

    A consistency proof is checked with ``head`` as its newer tree: its older root then is one the
    device is bound to (compare it with a head you held before).
    """
    if not head.verify(key):
        return f"the head is not signed by key {head.key_id}"
    try:
        path = _hashes(proof.get("proof"))
        if proof.get("type") == "inclusion":
            index, size = int(proof["index"]), int(proof["size"])
            leaf = merkle.leaf_hash(canonical(proof["entry"]))
            if size != head.size:
                return f"the proof is for a tree of {size} entries, the head covers {head.size}"
            if not merkle.verify_inclusion(leaf, index, size, path, head.root):
                return f"entry {index} is not in the tree of the signed head"
            return None
        if proof.get("type") == "consistency":
            old, new = int(proof["from"]), int(proof["to"])
            if new != head.size:
                return f"the proof ends at {new} entries, the head covers {head.size}"
            old_root = bytes.fromhex(proof["from_root"])
            if not merkle.verify_consistency(old, new, old_root, head.root, path):
                return (
                    f"the tree of {old} entries (root {old_root.hex()}) is not a prefix of the signed head's"
                )
            return None
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed proof: {exc}"
    return "not an inclusion or consistency proof"
