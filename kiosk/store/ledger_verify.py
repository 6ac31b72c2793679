"""Verify the audit ledger and the rows it vouches for, naming the first thing that does not match.

Streams every table in index / pos / size / seq order (a few cursors, O(log n) memory), so a million
entries verify on a Pi. In order, the first failure wins:

1. each entry: rows contiguous from 0 (``entry 17 is missing``), its own ``index`` field equal to its
   row (``holds entry 18's content``: reordered), its leaf hash recomputed from its bytes, seqs rising;
2. every stored interior node recomputed from the leaves, in the order appends completed them; a
   level-1 node that differs while its leaves match their entries means an entry was rewritten
   together with its leaf hash;
3. every stored signed head: its signature (keys from ``keys`` or recorded at signing) and its root
   against the recomputed tree of that size; nodes, heads or ``sqlite_sequence`` reaching beyond the
   last row mean tail entries were deleted;
4. each finished transaction's decision and reasons against the entry that recorded them;
5. each outbox row still present against its entry (type, seq, event id, time, payload digest), and
   no row deleted above the hub's acknowledgement watermark.

Rows are allowed to disappear where the design deletes them (outbox compaction below the hub's
watermark, retention); the ledger keeps their entries. Pre-ledger rows (a store migrated from schema
3) have no entries and cannot be checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlite_utils import Database

from contract import merkle
from contract.tree_head import TreeHead, key_id
from kiosk.store.ledger import Ledger, head_from_row, node_of_pos, node_pos
from kiosk.store.ledger_entries import payload_digest

HUB_ACK_META_KEY = "hub_ack_seq"  # edge_agent.ack.META_KEY; the kiosk must not import the agent


class Mismatch(Exception):
    """The first problem found; its message names the entry, row or head."""


@dataclass(frozen=True)
class VerifyResult:
    entries: int
    root: bytes
    heads: int
    last_head: TreeHead | None
    outbox_rows: int
    transactions: int
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.problem is not None:
            return f"ledger NOT intact: {self.problem}"
        last = self.last_head
        head = (
            f"last signed head: size {last.size} at {last.ts} (key {last.key_id})"
            if last
            else "no signed head"
        )
        return (
            f"ledger intact: {self.entries} entries, root {self.root.hex()}, {head};"
            f" {self.heads} heads, {self.outbox_rows} outbox rows, {self.transactions} transactions checked"
        )


def _span(level: int, index: int) -> tuple[int, int]:
    return index << level, ((index + 1) << level) - 1


def _rows(db: Database, sql: str, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    # A cursor of its own per stream: several are read side by side.
    return iter(db.conn.cursor().execute(sql, params))


class _Verifier:
    def __init__(self, db: Database, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.db = db
        self.keys = dict(keys)
        self.frontier = merkle.Frontier()
        self.heads_checked = 0
        self.last_head: TreeHead | None = None
        self.first_seq: int | None = None
        self.first_ts: str | None = None
        self.above_watermark = 0
        self.outbox_rows = 0
        self.transactions = 0
        self.next_node: tuple[Any, ...] | None = None
        self.next_head: tuple[Any, ...] | None = None
        row = db.execute("SELECT value FROM meta WHERE key = ?", (HUB_ACK_META_KEY,)).fetchone()
        self.watermark = int(row[0]) if row and str(row[0]).isdigit() else 0

    def recorded_keys(self) -> None:
        for kid, raw in self.db.execute("SELECT key_id, public_key FROM ledger_keys"):
            try:
                key = Ed25519PublicKey.from_public_bytes(bytes(raw))
            except ValueError as exc:
                raise Mismatch(f"device key {kid}: not an Ed25519 public key") from exc
            if key_id(key) != kid:
                raise Mismatch(f"device key {kid}: the recorded key does not have this id")
            self.keys.setdefault(kid, key)

    # -- 1-3: entries, nodes, heads ------------------------------------------------------------
    def entries(self) -> None:
        nodes = _rows(self.db, "SELECT pos, hash FROM ledger_nodes ORDER BY pos")
        heads = _rows(
            self.db, "SELECT size, root, ts, key_id, signature, id FROM ledger_heads ORDER BY size, id"
        )
        self.next_node = next(nodes, None)
        self.next_head = next(heads, None)
        self._heads_at_size(heads)
        previous_seq = 0
        for idx, body, leaf, txn_column in _rows(
            self.db, "SELECT idx, entry, leaf, transaction_id FROM ledger ORDER BY idx"
        ):
            expected = self.frontier.size
            if idx != expected:
                gap = f"entries {expected}..{idx - 1} are" if idx - 1 > expected else f"entry {expected} is"
                raise Mismatch(
                    f"{gap} missing" if idx > expected else f"entry {expected}: bad row index {idx}"
                )
            body = bytes(body)
            entry = self._entry(idx, body)
            if merkle.leaf_hash(body) != bytes(leaf):
                raise Mismatch(f"entry {idx}: content does not match its leaf hash")
            if txn_column != entry.get("transaction_id"):
                raise Mismatch(f"entry {idx}: its transaction_id column differs from its content")
            seq = entry.get("seq")
            if isinstance(seq, int):
                if seq <= previous_seq:
                    raise Mismatch(
                        f"entry {idx}: outbox seq {seq} is not after the previous entry's {previous_seq}"
                    )
                previous_seq = seq
                if self.first_seq is None:
                    self.first_seq, self.first_ts = seq, str(entry.get("ts"))
                if seq > self.watermark:
                    self.above_watermark += 1
            for level, index, value in self.frontier.append(bytes(leaf)):
                self._node(nodes, level, index, value)
            self._heads_at_size(heads)
        self._tail(nodes)

    def _entry(self, idx: int, body: bytes) -> dict[str, Any]:
        try:
            entry = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Mismatch(f"entry {idx}: not a ledger entry (unreadable)") from exc
        if not isinstance(entry, dict):
            raise Mismatch(f"entry {idx}: not a ledger entry")
        recorded = entry.get("index")
        if recorded != idx:
            raise Mismatch(f"entry {idx}: holds entry {recorded}'s content (entries reordered)")
        return entry

    def _node(self, nodes: Iterator[tuple[Any, ...]], level: int, index: int, value: bytes) -> None:
        pos = node_pos(level, index)
        first, last = _span(level, index)
        if self.next_node is None or self.next_node[0] > pos:
            raise Mismatch(
                f"tree node (level {level}, index {index}) over entries {first}..{last} is missing"
            )
        if self.next_node[0] < pos:
            stray_level, stray_index = node_of_pos(self.next_node[0])
            raise Mismatch(f"tree node (level {stray_level}, index {stray_index}) is not part of the tree")
        if bytes(self.next_node[1]) != value:
            if level == 1:
                raise Mismatch(
                    f"entry {first} or {last} was rewritten together with its leaf hash: entries"
                    f" {first}..{last} do not match tree node (level 1, index {index})"
                )
            raise Mismatch(
                f"tree node (level {level}, index {index}) over entries {first}..{last} was altered"
            )
        self.next_node = next(nodes, None)

    def _heads_at_size(self, heads: Iterator[tuple[Any, ...]]) -> None:
        while self.next_head is not None and self.next_head[0] == self.frontier.size:
            head = head_from_row(self.next_head[:5])
            where = f"signed head #{self.next_head[5]} (size {head.size}, {head.ts})"
            key = self.keys.get(head.key_id)
            if key is None:
                raise Mismatch(f"{where}: signed by key {head.key_id}, which is unknown")
            if not head.verify(key):
                raise Mismatch(f"{where}: signature is not valid")
            if head.root != self.frontier.root():
                raise Mismatch(
                    f"{where} does not match the ledger: entries before {head.size} were rewritten"
                )
            self.heads_checked += 1
            if self.last_head is None or head.size >= self.last_head.size:
                self.last_head = head
            self.next_head = next(heads, None)

    def _tail(self, nodes: Iterator[tuple[Any, ...]]) -> None:
        n = self.frontier.size
        if self.next_node is not None:
            level, index = node_of_pos(self.next_node[0])
            last = _span(level, index)[1]
            if last >= n:
                raise Mismatch(
                    f"entry {n} is missing: tree node (level {level}, index {index}) reaches entry {last}"
                )
            raise Mismatch(f"tree node (level {level}, index {index}) is not part of the tree")
        if self.next_head is not None:
            raise Mismatch(
                f"entry {n} is missing: signed head #{self.next_head[5]} ({self.next_head[2]}) covers"
                f" {self.next_head[0]} entries"
            )
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'ledger'").fetchone()
        if row is not None and int(row[0]) >= n:
            raise Mismatch(f"entry {n} is missing: the ledger once held {int(row[0]) + 1} entries")

    # -- 4: transactions ---------------------------------------------------------------------------
    def transactions_table(self) -> None:
        for txn, decision, reasons, finished_at in _rows(
            self.db,
            "SELECT id, decision, reasons, finished_at FROM transactions WHERE status != 'in_progress'"
            " ORDER BY started_at, id",
        ):
            self.transactions += 1
            recorded = [
                (idx, entry)
                for idx, body in self.db.execute(
                    "SELECT idx, entry FROM ledger WHERE transaction_id = ? ORDER BY idx", (txn,)
                )
                if "decision" in (entry := json.loads(bytes(body)))
            ]
            if not recorded:
                if self.first_ts is not None and (finished_at or "") >= self.first_ts:
                    raise Mismatch(f"transaction {txn}: finished {decision} but has no ledger entry")
                continue
            idx, entry = recorded[-1]
            where = f"transaction {txn}"
            if decision != entry["decision"]:
                raise Mismatch(
                    f"{where}: decision {decision} differs from ledger entry {idx} ({entry['decision']})"
                )
            if json.loads(reasons) != entry.get("reasons"):
                raise Mismatch(
                    f"{where}: reasons {reasons} differ from ledger entry {idx} ({entry.get('reasons')})"
                )

    # -- 5: outbox -------------------------------------------------------------------------------
    def outbox(self) -> None:
        present_above = 0
        for seq, event_id, kind, ts, payload, index in _rows(
            self.db, "SELECT seq, event_id, type, ts, payload, ledger_index FROM outbox ORDER BY seq"
        ):
            self.outbox_rows += 1
            where = f"outbox seq {seq}"
            if index is None:
                if self.first_seq is not None and seq >= self.first_seq:
                    raise Mismatch(f"{where}: has no ledger entry")
                continue
            row = self.db.execute("SELECT entry FROM ledger WHERE idx = ?", (index,)).fetchone()
            if row is None:
                raise Mismatch(f"{where}: its ledger entry {index} is missing")
            entry = json.loads(bytes(row[0]))
            if entry.get("seq") != seq or entry.get("event_id") != event_id:
                raise Mismatch(
                    f"{where}: ledger entry {index} records another event (seq {entry.get('seq')})"
                )
            if entry.get("kind") != kind:
                raise Mismatch(
                    f"{where}: type {kind} differs from ledger entry {index} ({entry.get('kind')})"
                )
            if entry.get("ts") != ts:
                raise Mismatch(f"{where}: time {ts} differs from ledger entry {index} ({entry.get('ts')})")
            if entry.get("payload_sha256") != payload_digest(payload):
                raise Mismatch(f"{where}: payload differs from ledger entry {index}")
            if seq > self.watermark:
                present_above += 1
        if present_above < self.above_watermark:
            raise Mismatch(self._deleted_above_watermark())

    def _deleted_above_watermark(self) -> str:
        # Only on failure: find the first entry whose unacknowledged event row is gone.
        for idx, body in _rows(self.db, "SELECT idx, entry FROM ledger ORDER BY idx"):
            seq = json.loads(bytes(body)).get("seq")
            if (
                isinstance(seq, int)
                and seq > self.watermark
                and self.db.execute("SELECT 1 FROM outbox WHERE seq = ?", (seq,)).fetchone() is None
            ):
                return (
                    f"outbox seq {seq} (ledger entry {idx}) was deleted before the hub acknowledged it"
                    f" (watermark {self.watermark})"
                )
        return "outbox rows were deleted before the hub acknowledged them"


def verify(ledger: Ledger, keys: Mapping[str, Ed25519PublicKey] | None = None) -> VerifyResult:
    """Check the whole ledger and the rows it vouches for (see the module docstring).

    ``keys`` maps key ids to device public keys the caller trusts; heads signed by other keys are
    checked with the public key recorded when they were signed (which proves the head was not
    altered since, not who signed it: that is what a head held by the hub proves).
    """
    with ledger.core.read("verify the ledger") as db:
        db.execute("BEGIN")  # one snapshot for every cursor, while writers (the agent) go on
        try:
            check = _Verifier(db, keys or {})
            problem = None
            try:
                check.recorded_keys()
                check.entries()
                check.transactions_table()
                check.outbox()
            except Mismatch as found:
                problem = str(found)
        finally:
            db.execute("ROLLBACK")
    return VerifyResult(
        entries=check.frontier.size,
        root=check.frontier.root(),
        heads=check.heads_checked,
        last_head=check.last_head,
        outbox_rows=check.outbox_rows,
        transactions=check.transactions,
        problem=problem,
    )
