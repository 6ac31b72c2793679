"""The audit ledger's rows: one Merkle-tree leaf per outbox event, its interior nodes, signed heads.

Appending (:func:`append`) happens inside :meth:`kiosk.store.outbox.Outbox.insert`, in the caller's
write transaction, so an event, the fact it reports and its ledger entry commit together or not at
all (a kill -9 loses at most the write in flight, and all three with it). Each append writes the
perfect subtrees it completes (one on average), so the root and any proof need only O(log n)
lookups (:class:`Ledger`). Verification is in :mod:`kiosk.store.ledger_verify`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlite_utils import Database

from contract import merkle
from contract.tree_head import TreeHead, public_key_raw, sign_head
from kiosk.store.core import StoreCore
from kiosk.store.errors import StoreError
from kiosk.store.records import dumps

# ledger_nodes.pos = (index of the node's last leaf << LEVEL_BITS) | level: rowid order is the order
# in which appends complete the nodes. 6 bits hold levels up to 63.
LEVEL_BITS = 6


class LedgerError(StoreError):
    """The ledger cannot answer (a node or entry it needs is missing, or a size is out of range)."""


def node_pos(level: int, index: int) -> int:
    return ((((index + 1) << level) - 1) << LEVEL_BITS) | level


def node_of_pos(pos: int) -> tuple[int, int]:
    """``(level, index)`` of the node stored at ``pos``."""
    level = pos & ((1 << LEVEL_BITS) - 1)
    return level, ((pos >> LEVEL_BITS) + 1 >> level) - 1


def size(db: Database) -> int:
    row = db.execute("SELECT idx FROM ledger ORDER BY idx DESC LIMIT 1").fetchone()
    return 0 if row is None else int(row[0]) + 1


def subtree_reader(db: Database) -> merkle.SubtreeHash:
    """The :data:`contract.merkle.SubtreeHash` accessor over the stored leaves and nodes."""

    def subtree(level: int, index: int) -> bytes:
        if level == 0:
            row = db.execute("SELECT leaf FROM ledger WHERE idx = ?", (index,)).fetchone()
        else:
            row = db.execute(
                "SELECT hash FROM ledger_nodes WHERE pos = ?", (node_pos(level, index),)
            ).fetchone()
        if row is None:
            what = f"entry {index}" if level == 0 else f"tree node (level {level}, index {index})"
            raise LedgerError(f"ledger: {what} is missing")
        return bytes(row[0])

    return subtree


def append(db: Database, index: int, entry: Mapping[str, Any]) -> bytes:
    """Write entry ``index`` (the next one) and the nodes it completes; returns its leaf hash."""
    body = dumps(entry).encode("utf-8")
    leaf = merkle.leaf_hash(body)
    txn = entry.get("transaction_id")
    db.execute(
        "INSERT INTO ledger (idx, entry, leaf, transaction_id) VALUES (?, ?, ?, ?)",
        (index, body, leaf, txn if isinstance(txn, str) else None),
    )
    for level, node_index, value in merkle.completed_nodes(index, leaf, subtree_reader(db)):
        db.execute("INSERT INTO ledger_nodes (pos, hash) VALUES (?, ?)", (node_pos(level, node_index), value))
    return leaf


def head_from_row(row: tuple[Any, ...]) -> TreeHead:
    """A head from a ``ledger_heads`` row selected as ``_HEAD_COLUMNS``."""
    tree_size, root, ts, key_id, signature = row
    return TreeHead(
        size=int(tree_size), root=bytes(root), ts=str(ts), key_id=str(key_id), signature=bytes(signature)
    )


_HEAD_COLUMNS = "size, root, ts, key_id, signature"


class Ledger:
    """Reading the ledger, its proofs, and signing heads with the device key."""

    def __init__(self, core: StoreCore) -> None:
        self._core = core

    @property
    def core(self) -> StoreCore:
        return self._core

    def size(self) -> int:
        with self._core.read("read ledger size") as db:
            return size(db)

    def root(self, tree_size: int | None = None) -> tuple[int, bytes]:
        """``(size, root)`` of the first ``tree_size`` entries (default: all)."""
        with self._core.read("read ledger root") as db:
            n = self._checked_size(db, tree_size)
            return n, merkle.root(subtree_reader(db), n)

    def entry(self, index: int) -> bytes:
        """The canonical JSON bytes of entry ``index``."""
        with self._core.read(f"read ledger entry {index}") as db:
            row = db.execute("SELECT entry FROM ledger WHERE idx = ?", (int(index),)).fetchone()
        if row is None:
            raise LedgerError(f"ledger: entry {index} does not exist", path=self._core.path)
        return bytes(row[0])

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        with self._core.read(f"prove ledger entry {index}") as db:
            n = self._checked_size(db, tree_size)
            if not 0 <= index < n:
                raise LedgerError(
                    f"ledger: entry {index} is not in the first {n} entries", path=self._core.path
                )
            return merkle.inclusion_proof(subtree_reader(db), index, n)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        with self._core.read("prove ledger consistency") as db:
            n = self._checked_size(db, new_size)
            if not 0 <= old_size <= n:
                raise LedgerError(
                    f"ledger: no consistency proof from {old_size} to {n}", path=self._core.path
                )
            return merkle.consistency_proof(subtree_reader(db), old_size, n)

    def sign_head(self, private_key: Ed25519PrivateKey) -> TreeHead:
        """Sign and store a head over every entry so far; returns it (for publishing)."""
        public = private_key.public_key()
        with self._core.write("sign ledger head") as db:
            n = size(db)
            head = sign_head(private_key, n, merkle.root(subtree_reader(db), n), self._core.timestamp())
            db.execute(
                "INSERT OR IGNORE INTO ledger_keys (key_id, public_key) VALUES (?, ?)",
                (head.key_id, public_key_raw(public)),
            )
            db.execute(
                f"INSERT INTO ledger_heads ({_HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (head.size, head.root, head.ts, head.key_id, head.signature),
            )
        return head

    def latest_head(self, *, covering: int = 0) -> TreeHead | None:
        """The newest signed head of at least ``covering`` entries."""
        with self._core.read("read ledger head") as db:
            row = db.execute(
                f"SELECT {_HEAD_COLUMNS} FROM ledger_heads WHERE size >= ? ORDER BY id DESC LIMIT 1",
                (int(covering),),
            ).fetchone()
        return None if row is None else head_from_row(row)

    def head_of_size(self, tree_size: int) -> TreeHead | None:
        with self._core.read("read ledger head") as db:
            row = db.execute(
                f"SELECT {_HEAD_COLUMNS} FROM ledger_heads WHERE size = ? ORDER BY id DESC LIMIT 1",
                (int(tree_size),),
            ).fetchone()
        return None if row is None else head_from_row(row)

    def _checked_size(self, db: Database, tree_size: int | None) -> int:
        n = size(db)
        if tree_size is None:
            return n
        if not 0 <= tree_size <= n:
            raise LedgerError(f"ledger: size {tree_size} is beyond its {n} entries", path=self._core.path)
        return tree_size
