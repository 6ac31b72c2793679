"""The audit ledger in the store: one entry per event in the same write, no personal data, proofs,
and `ledger verify` naming every edit, deletion and reordering made to the SQLite file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlite_utils import Database

from contract import merkle
from contract.tree_head import TreeHead
from kiosk.cli import main
from kiosk.ledger.bench import run_bench
from kiosk.ledger.device_key import public_pem
from kiosk.store import Store, migrations
from kiosk.store.ledger_verify import verify
from tests.ledger_fixtures import HASH, entry, populate, raw, rebuild_nodes, rewrite_entry

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def db(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "kiosk.sqlite3"
    with Store.open(path) as store:
        populate(store, key)
    return path


def problem_of(path: Path) -> str | None:
    with Store.open(path) as store:
        return verify(store.ledger).problem


def test_every_event_has_its_entry_and_no_personal_data(db: Path) -> None:
    with raw(db) as conn:
        events = conn.execute("SELECT seq, type, payload, ledger_index FROM outbox ORDER BY seq").fetchall()
        assert [row[3] for row in events] == list(range(len(events))) == list(range(16))
        bodies = [bytes(r[0]) for r in conn.execute("SELECT entry FROM ledger ORDER BY idx")]
        first = entry(conn, 0)
    assert HASH.encode() not in b"".join(bodies)  # the pseudonym stays in the outbox only
    assert set(first) == {
        "index",
        "kind",
        "seq",
        "event_id",
        "ts",
        "payload_sha256",
        "transaction_id",
        "decision",
        "reasons",
    }
    alert = json.loads(bodies[2])
    assert (alert["kind"], alert["alert"]) == ("alert", "referral_watchlist_hit")


def test_intact_ledger_verifies_from_the_command_line(
    db: Path, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    pem = tmp_path / "device.pub.pem"
    pem.write_bytes(public_pem(key.public_key()))
    done = subprocess.run(
        [sys.executable, "-m", "kiosk", "ledger", "verify", "--db", str(db), "--key", str(pem)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ledger intact: 16 entries, root ")
    assert "last signed head: size 16" in lines[0]


def test_a_head_by_another_key_is_refused(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = tmp_path / "other.pub.pem"
    pem.write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))
    with raw(db) as conn:  # the attacker re-signs with their own key and swaps the recorded one
        conn.execute("DELETE FROM ledger_keys")
    assert main(["ledger", "verify", "--db", str(db), "--key", str(pem)]) == 1
    err = capsys.readouterr().err
    assert "signed head #1 (size 9" in err and "which is unknown" in err, err


def _edit_content(conn, idx: int) -> None:
    rewrite_entry(conn, idx, {**entry(conn, idx), "decision": "OPEN", "reasons": []}, leaf=False)


def _edit_with_leaf(conn, idx: int) -> None:
    rewrite_entry(conn, idx, {**entry(conn, idx), "decision": "OPEN", "reasons": []}, leaf=True)


def _edit_everything_but_heads(conn, idx: int) -> None:
    _edit_with_leaf(conn, idx)
    rebuild_nodes(conn)


def _delete(conn, idx: int) -> None:
    conn.execute("DELETE FROM ledger WHERE idx = ?", (idx,))


def _swap(conn, idx: int) -> None:
    a = conn.execute("SELECT entry, leaf FROM ledger WHERE idx = ?", (idx,)).fetchone()
    b = conn.execute("SELECT entry, leaf FROM ledger WHERE idx = ?", (idx + 1,)).fetchone()
    conn.execute("UPDATE ledger SET entry = ?, leaf = ? WHERE idx = ?", (*b, idx))
    conn.execute("UPDATE ledger SET entry = ?, leaf = ? WHERE idx = ?", (*a, idx + 1))


@pytest.mark.parametrize(
    ("attack", "idx", "named"),
    [
        (_edit_content, 5, "entry 5: content does not match its leaf hash"),
        (_edit_with_leaf, 5, "entry 4 or 5 was rewritten together with its leaf hash"),
        (_edit_everything_but_heads, 5, "signed head #1 (size 9, "),
        (_delete, 5, "entry 5 is missing"),
        (_delete, 15, "entry 15 is missing"),
        (_swap, 3, "entry 3: holds entry 4's content (entries reordered)"),
    ],
)
def test_ledger_edits_are_named(
    db: Path, attack, idx: int, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with raw(db) as conn:
        attack(conn, idx)
    assert main(["ledger", "verify", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ledger NOT intact: ") and named in err, err


def test_an_edited_outbox_payload_is_named(db: Path) -> None:
    with raw(db) as conn:
        seq, index, payload = conn.execute(
            "SELECT seq, ledger_index, payload FROM outbox WHERE type = 'transaction' ORDER BY seq DESC"
        ).fetchone()
        conn.execute("UPDATE outbox SET payload = ? WHERE seq = ?", (payload.replace("OPEN", "REFER"), seq))
    assert problem_of(db) == f"outbox seq {seq}: payload differs from ledger entry {index}"


def test_the_reviews_attack_is_named(db: Path) -> None:
    """The watchlist hit turned into OPEN, its alert deleted and its event edited, in the file."""
    with raw(db) as conn:
        txn = conn.execute(
            "SELECT id FROM transactions WHERE decision = 'REFER' ORDER BY started_at"
        ).fetchone()[0]
        conn.execute("UPDATE transactions SET decision = 'OPEN', reasons = '[]' WHERE id = ?", (txn,))
        conn.execute("DELETE FROM outbox WHERE type = 'alert' AND payload LIKE ?", (f"%{txn}%",))
        conn.execute(
            "UPDATE outbox SET payload = replace(replace(payload, 'REFER', 'OPEN'), '\"WATCHLIST_HIT\"', '')"
            " WHERE type = 'transaction' AND payload LIKE ?",
            (f"%{txn}%",),
        )
        index = conn.execute(
            "SELECT idx FROM ledger WHERE transaction_id = ? ORDER BY idx", (txn,)
        ).fetchone()[0]
    assert problem_of(db) == f"transaction {txn}: decision OPEN differs from ledger entry {index} (REFER)"


def test_deleting_an_unacknowledged_event_is_named(db: Path) -> None:
    with raw(db) as conn:
        seq, index = conn.execute("SELECT seq, ledger_index FROM outbox WHERE type = 'alert'").fetchone()
        conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
    assert problem_of(db) == (
        f"outbox seq {seq} (ledger entry {index}) was deleted before the hub acknowledged it (watermark 0)"
    )


def test_compaction_below_the_watermark_is_not_tampering(db: Path) -> None:
    with Store.open(db) as store:
        store.meta.set("hub_ack_seq", "10")
        store.outbox.mark_delivered(range(1, 11))
        assert (
            store.outbox.compact(acked_through=10, delivered_before=datetime.now(UTC) + timedelta(days=1))
            == 10
        )
        assert verify(store.ledger).ok


def _write(path: Path, body: object) -> Path:
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def test_proofs_from_the_command_line_check_against_a_signed_head(
    db: Path, key: Ed25519PrivateKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = tmp_path / "device.pub.pem"
    pem.write_bytes(public_pem(key.public_key()))
    assert main(["ledger", "prove", "--db", str(db), "--entry", "9"]) == 0
    proof = json.loads(capsys.readouterr().out)
    assert proof["entry"]["index"] == 9 and proof["size"] == 16
    head = _write(tmp_path / "head.json", proof["head"])
    ok = _write(tmp_path / "proof.json", proof)
    assert main(["ledger", "check", "--proof", str(ok), "--head", str(head), "--key", str(pem)]) == 0
    forged = _write(tmp_path / "forged.json", {**proof, "entry": {**proof["entry"], "decision": "OPEN"}})
    assert main(["ledger", "check", "--proof", str(forged), "--head", str(head), "--key", str(pem)]) == 1
    assert "entry 9 is not in the tree of the signed head" in capsys.readouterr().err

    # The hub held the head of size 9; the device proves that 16 extends it.
    with Store.open(db) as store:
        old = store.ledger.head_of_size(9)
    assert old is not None
    assert main(["ledger", "consistency", "--db", str(db), "--from", "9", "--to", "16"]) == 0
    consistency = json.loads(capsys.readouterr().out)
    assert consistency["from_root"] == old.root.hex()
    cons = _write(tmp_path / "consistency.json", consistency)
    assert main(["ledger", "check", "--proof", str(cons), "--head", str(head), "--key", str(pem)]) == 0
    stranger = _write(tmp_path / "stranger.pub.pem", None)
    stranger.write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))
    assert main(["ledger", "check", "--proof", str(cons), "--head", str(head), "--key", str(stranger)]) == 1
    assert TreeHead.from_json(json.loads(head.read_text())).size == 16


def test_proofs_need_a_signed_head_covering_the_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kiosk.sqlite3"
    with Store.open(path) as store:
        store.outbox.add("help", {"state": "idle", "transaction_id": None})
    assert main(["ledger", "prove", "--db", str(path), "--entry", "0"]) == 1
    assert "not covered by any signed head" in capsys.readouterr().err
    assert main(["ledger", "verify", "--db", str(tmp_path / "absent.sqlite3")]) == 2


def test_store_answers_root_and_proofs_like_a_tree_in_memory(db: Path) -> None:
    with Store.open(db) as store:
        leaves = [merkle.leaf_hash(store.ledger.entry(i)) for i in range(store.ledger.size())]
        tree = merkle.MemoryTree(leaves)
        for size in range(1, 17):
            assert store.ledger.root(size) == (size, tree.root(size))
            assert store.ledger.consistency_proof(size // 2, size) == merkle.consistency_proof(
                tree.subtree, size // 2, size
            )
        assert store.ledger.inclusion_proof(11, 16) == merkle.inclusion_proof(tree.subtree, 11, 16)


def test_bench_builds_a_ledger_that_verifies_and_measures_it() -> None:
    result = run_bench(3000, 20)
    assert result["verify"]["entries"] == 3000 and result["verify"]["seconds"] > 0
    assert result["append_per_transaction_us"]["ratio"] > 0
    assert result["proof_us"]["inclusion"] > 0


def test_a_store_from_before_the_ledger_upgrades_and_verifies(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    migrations.migrate(Database(conn), path, migrations.MIGRATIONS[:3])
    conn.execute(
        "INSERT INTO transactions (id, started_at, finished_at, status, decision) VALUES"
        " ('old', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', 'finished', 'OPEN')"
    )
    conn.execute(
        "INSERT INTO outbox (event_id, type, ts, payload)"
        " VALUES ('e', 'help', '2026-01-01T00:00:00.000Z', '{}')"
    )
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        populate(store, Ed25519PrivateKey.generate(), transactions=3)
        result = verify(store.ledger)
        assert result.ok, result.problem
        assert (result.entries, result.outbox_rows, result.transactions) == (4, 5, 4)
    with raw(path) as conn:  # a new event's link to the ledger cut: named
        conn.execute("UPDATE outbox SET ledger_index = NULL WHERE seq = 3")
    assert problem_of(path) == "outbox seq 3: has no ledger entry"


def test_events_name_their_ledger_entry(store: Store) -> None:
    first = store.outbox.add("help", {"state": "idle", "transaction_id": None})
    second = store.outbox.add("help", {"state": "idle", "transaction_id": None})
    assert (first.ledger_index, second.ledger_index) == (0, 1)
    assert [e.ledger_index for e in store.outbox.pending(10)] == [0, 1]
    assert json.loads(store.ledger.entry(1))["seq"] == second.seq
