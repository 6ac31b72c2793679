"""A small real ledger (transactions, watchlist-hit referrals with their alerts, signed heads) and the
raw-SQLite edits an attacker with the file would make."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import merkle
from kiosk.store import FinishedTransaction, Store
from kiosk.store.ledger import node_pos

HASH = "ab" * 32


def populate(store: Store, key: Ed25519PrivateKey, transactions: int = 12) -> list[str]:
    """Transactions (every third a watchlist-hit REFER with its alert), a head half-way and at the end;
    returns the ids of the referred transactions."""
    referred = []
    for i in range(transactions):
        txn = store.transactions.begin(versions={"kiosk": "1"}, training=False)
        hit = i % 3 == 1
        store.transactions.finish(
            FinishedTransaction(
                id=txn, decision="REFER" if hit else "OPEN", reasons=["WATCHLIST_HIT"] if hit else []
            )
        )
        if hit:
            referred.append(txn)
            store.outbox.add(
                "alert",
                {"alert": "referral_watchlist_hit", "transaction_id": txn, "document_pseudonym": HASH},
            )
        if i == transactions // 2:
            store.ledger.sign_head(key)
    store.ledger.sign_head(key)
    return referred


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """The file opened as an attacker would: plain sqlite3, no store, committed on exit."""
    conn = sqlite3.connect(path)
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def entry(conn: sqlite3.Connection, idx: int) -> dict:
    return json.loads(conn.execute("SELECT entry FROM ledger WHERE idx = ?", (idx,)).fetchone()[0])


def rewrite_entry(conn: sqlite3.Connection, idx: int, body: dict, *, leaf: bool) -> None:
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if leaf:
        conn.execute(
            "UPDATE ledger SET entry = ?, leaf = ? WHERE idx = ?", (data, merkle.leaf_hash(data), idx)
        )
    else:
        conn.execute("UPDATE ledger SET entry = ? WHERE idx = ?", (data, idx))


def rebuild_nodes(conn: sqlite3.Connection) -> None:
    """Recompute every interior node from the leaves as they are now: a consistent rewrite."""
    leaves = [bytes(r[0]) for r in conn.execute("SELECT leaf FROM ledger ORDER BY idx")]
    tree = merkle.MemoryTree(leaves)
    conn.execute("DELETE FROM ledger_nodes")
    for level in range(1, len(tree.levels)):
        for index, value in enumerate(tree.levels[level]):
            conn.execute(
                "INSERT INTO ledger_nodes (pos, hash) VALUES (?, ?)", (node_pos(level, index), value)
            )
