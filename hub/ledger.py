"""The hub's event store: every event exactly once, durably, with what is still missing per kiosk.

De-duplication is the database's own uniqueness (``event_id``, and one event per kiosk and seq), so
it survives a consumer restart and needs no memory. Each insert is committed with ``synchronous =
FULL`` before the event counts as stored: the acknowledgement watermark the hub gives a kiosk (which
lets it delete events) must never run ahead of the disk.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

KioskKey = tuple[str, str]

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS events (
        site TEXT NOT NULL,
        kiosk TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        ts TEXT NOT NULL,
        body TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (site, kiosk, seq)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS kiosks (
        site TEXT NOT NULL,
        kiosk TEXT NOT NULL,
        reported_seq INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (site, kiosk)
    )
    """,
)


@dataclass(frozen=True)
class KioskPosition:
    """What the hub holds of one kiosk: ``last_seq`` is the highest seq known to exist (received, or
    reported in the kiosk's state), ``gaps`` the inclusive ranges below it not received."""

    unique_events: int
    last_seq: int
    gaps: list[tuple[int, int]]

    @property
    def last_contiguous_seq(self) -> int:
        return self.gaps[0][0] - 1 if self.gaps else self.last_seq


class EventLedger:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> Self:
        # One connection shared by the MQTT and recovery threads; the consumer serialises access.
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        for statement in _SCHEMA:
            conn.execute(statement)
        return cls(conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def add(self, site: str, kiosk: str, event: dict[str, Any]) -> bool:
        """Store one event; False when it is already there (by ``event_id`` or by kiosk and seq)."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO events (site, kiosk, seq, event_id, type, ts, body, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                site,
                kiosk,
                int(event["seq"]),
                str(event["event_id"]),
                str(event.get("type", "")),
                str(event.get("ts", "")),
                json.dumps(event, sort_keys=True, separators=(",", ":")),
                datetime.now(UTC).isoformat(),
            ),
        )
        return cursor.rowcount == 1

    def note_reported(self, site: str, kiosk: str, last_seq: int) -> None:
        """The kiosk says events up to ``last_seq`` exist: kept so a missing tail outlives a restart."""
        self._conn.execute(
            "INSERT INTO kiosks (site, kiosk, reported_seq) VALUES (?, ?, ?)"
            " ON CONFLICT (site, kiosk)"
            " DO UPDATE SET reported_seq = max(reported_seq, excluded.reported_seq)",
            (site, kiosk, int(last_seq)),
        )

    def kiosks(self) -> list[KioskKey]:
        rows = self._conn.execute(
            "SELECT site, kiosk FROM kiosks UNION SELECT DISTINCT site, kiosk FROM events ORDER BY 1, 2"
        )
        return [(str(site), str(kiosk)) for site, kiosk in rows]

    def position(self, site: str, kiosk: str) -> KioskPosition:
        """Counted from the stored rows; seqs start at 1, so a missing start is a gap too."""
        count, highest = self._conn.execute(
            "SELECT count(*), coalesce(max(seq), 0) FROM events WHERE site = ? AND kiosk = ?", (site, kiosk)
        ).fetchone()
        holes = self._conn.execute(
            "SELECT previous + 1, seq - 1 FROM (SELECT seq, lag(seq, 1, 0) OVER (ORDER BY seq) AS previous"
            " FROM events WHERE site = ? AND kiosk = ?) WHERE seq > previous + 1 ORDER BY seq",
            (site, kiosk),
        )
        gaps = [(int(low), int(high)) for low, high in holes]
        row = self._conn.execute(
            "SELECT reported_seq FROM kiosks WHERE site = ? AND kiosk = ?", (site, kiosk)
        ).fetchone()
        reported = int(row[0]) if row else 0
        if reported > highest:
            gaps.append((int(highest) + 1, reported))
        return KioskPosition(int(count), max(int(highest), reported), gaps)

    def report(self) -> dict[str, dict[str, Any]]:
        """``site/kiosk`` -> ``unique_events``, ``last_contiguous_seq`` and ``gaps`` ([from, to] lists)."""
        out: dict[str, dict[str, Any]] = {}
        for site, kiosk in self.kiosks():
            position = self.position(site, kiosk)
            out[f"{site}/{kiosk}"] = {
                "unique_events": position.unique_events,
                "last_contiguous_seq": position.last_contiguous_seq,
                "gaps": [list(gap) for gap in position.gaps],
            }
        return out
