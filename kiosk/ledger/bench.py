"""``python -m kiosk ledger bench``: what the ledger costs.

* append: a finished transaction with its event (begin + finish, one fsync'd write each) on a real
  store, with the ledger and with the ledger's part taken out, per transaction in µs and the ratio;
* verify: a ledger of ``entries`` transaction-like entries, built directly (leaves and nodes in bulk,
  as appends would have written them), verified end to end: the kiosk's start-up check;
* proofs: inclusion and consistency proofs on that ledger, per proof.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

from contract import merkle
from kiosk.store import FinishedTransaction, Store
from kiosk.store import outbox as outbox_module
from kiosk.store.ledger import node_pos
from kiosk.store.ledger_entries import make_entry
from kiosk.store.ledger_verify import HUB_ACK_META_KEY, verify
from kiosk.store.records import EventType, dumps, new_id

PROOFS = 1000
ROUNDS = 10
_BATCH = 10_000


@contextmanager
def _without_ledger() -> Iterator[None]:
    # The baseline: the same store and write, with the ledger's work (index, entry, leaf, nodes) skipped.
    skipped = SimpleNamespace(size=lambda _db: 0, append=lambda _db, _index, _entry: b"")
    with (
        mock.patch.object(outbox_module, "ledger", skipped),
        mock.patch.object(outbox_module, "make_entry", lambda *_a: {}),
    ):
        yield


def _transactions_us(store: Store, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        txn = store.transactions.begin(versions={"kiosk": "bench"}, training=False)
        store.transactions.finish(
            FinishedTransaction(id=txn, decision="OPEN" if i % 7 else "REFER", reasons=[], path=["done"])
        )
    return (time.perf_counter() - started) / count * 1e6


def _append_costs(folder: Path, transactions: int) -> tuple[float, float]:
    """Median µs per transaction with and without the ledger, in alternating rounds: each transaction
    waits for two fsyncs, whose time drifts with everything else on the machine."""
    rounds, per_round = ROUNDS, max(1, transactions // ROUNDS)
    timings: dict[bool, list[float]] = {True: [], False: []}
    with Store.open(folder / "with.sqlite3") as ledgered, Store.open(folder / "without.sqlite3") as plain:
        for _ in range(rounds):
            timings[True].append(_transactions_us(ledgered, per_round))
            with _without_ledger():
                timings[False].append(_transactions_us(plain, per_round))
    return statistics.median(timings[True]), statistics.median(timings[False])


def _entries(count: int) -> Iterator[tuple[int, bytes, bytes, str]]:
    for index in range(count):
        txn = new_id()
        payload = {"transaction_id": txn, "decision": "OPEN", "reasons": []}
        entry = make_entry(
            index,
            EventType.TRANSACTION,
            index + 1,
            new_id(),
            "2026-12-04T00:00:00.000Z",
            payload,
            dumps(payload),
        )
        body = dumps(entry).encode("utf-8")
        yield index, body, merkle.leaf_hash(body), txn


def build_ledger(store: Store, count: int) -> None:
    """``count`` entries with their nodes, written in bulk; no outbox rows, as after the hub acknowledged
    every event and compaction deleted them."""
    frontier = merkle.Frontier()
    with store.ledger.core.write("build bench ledger") as db:
        rows: list[tuple[int, bytes, bytes, str]] = []
        nodes: list[tuple[int, bytes]] = []
        for row in _entries(count):
            rows.append(row)
            nodes.extend((node_pos(level, index), value) for level, index, value in frontier.append(row[2]))
            if len(rows) >= _BATCH:
                db.conn.executemany(
                    "INSERT INTO ledger (idx, entry, leaf, transaction_id) VALUES (?, ?, ?, ?)", rows
                )
                db.conn.executemany("INSERT INTO ledger_nodes (pos, hash) VALUES (?, ?)", nodes)
                rows, nodes = [], []
        db.conn.executemany("INSERT INTO ledger (idx, entry, leaf, transaction_id) VALUES (?, ?, ?, ?)", rows)
        db.conn.executemany("INSERT INTO ledger_nodes (pos, hash) VALUES (?, ?)", nodes)
    store.meta.set(HUB_ACK_META_KEY, str(count))


def _per_call_us(call: Callable[[int], object], arguments: list[int]) -> float:
    started = time.perf_counter()
    for argument in arguments:
        call(argument)
    return (time.perf_counter() - started) / len(arguments) * 1e6


def run_bench(entries: int, transactions: int) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="gerbang-ledger-bench-") as tmp:
        folder = Path(tmp)
        with_ledger, without = _append_costs(folder, transactions)
        with Store.open(folder / "big.sqlite3") as store:
            started = time.perf_counter()
            build_ledger(store, entries)
            built_s = time.perf_counter() - started
            store.ledger.sign_head(Ed25519PrivateKey.generate())
            started = time.perf_counter()
            result = verify(store.ledger)
            verify_s = time.perf_counter() - started
            if not result.ok:
                raise RuntimeError(f"the bench ledger does not verify: {result.problem}")
            size_bytes = store.diagnostics()["size_bytes"]
            ledger = store.ledger
            inclusion_us = _per_call_us(
                lambda i: ledger.inclusion_proof(i, entries), [rng.randrange(entries) for _ in range(PROOFS)]
            )
            consistency_us = _per_call_us(
                lambda i: ledger.consistency_proof(i, entries),
                [rng.randrange(1, entries) for _ in range(PROOFS)],
            )
            root_us = _per_call_us(lambda _i: ledger.root(), list(range(PROOFS)))
    return {
        "append_per_transaction_us": {
            "with_ledger": round(with_ledger, 1),
            "without_ledger": round(without, 1),
            "ratio": round(with_ledger / without, 3),
            "transactions": transactions,
        },
        "verify": {
            "entries": entries,
            "seconds": round(verify_s, 2),
            "us_per_entry": round(verify_s / entries * 1e6, 2),
            "database_mb": round(size_bytes / 1e6, 1),
            "build_seconds": round(built_s, 1),
        },
        "proof_us": {
            "inclusion": round(inclusion_us, 1),
            "consistency": round(consistency_us, 1),
            "root": round(root_us, 1),
            "tree_size": entries,
        },
    }
