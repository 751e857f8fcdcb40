"""The terminal's SQLite database: the one module that owns its schema.

The kiosk and the sync daemon share one file in WAL mode; each process opens one ``Store`` (one
writer connection) with a busy timeout. ``record`` returns only after the rating is committed with
``synchronous=FULL``, so a rating whose thank-you was shown survives kill -9 and power loss. Each
rating row is also its own outbox entry: ``pending`` until the central server acknowledges it,
then ``delivered``; a rating the server refuses for good becomes ``dead`` (a dead letter), kept
with the server's status and reason and never retried automatically.

The schema is versioned with ``PRAGMA user_version``; ``MIGRATIONS`` only ever grows.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils

from terminal.core.rating import Rating, wire_digest

BUSY_TIMEOUT_MS = 10_000

#: Each entry takes the schema from version N to N+1. Never edit a released entry: append one.
MIGRATIONS: list[tuple[str, str]] = [
    ("ratings outbox", """
        CREATE TABLE ratings (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- local order of recording
            id TEXT NOT NULL UNIQUE,                -- made on the terminal, unique on the server
            level INTEGER NOT NULL CHECK (level BETWEEN 1 AND 5),
            window TEXT NOT NULL,
            staff_no TEXT,
            rated_at TEXT NOT NULL,
            payload TEXT NOT NULL,                  -- the wire JSON, exactly what is uploaded
            digest TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'delivered', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            delivered_at TEXT,
            dead_status INTEGER,
            dead_reason TEXT
        );
        CREATE INDEX ratings_outbox ON ratings (state, seq);
        CREATE VIEW dead_letters AS
            SELECT seq, id, dead_status, dead_reason, payload, recorded_at
            FROM ratings WHERE state = 'dead';
    """),
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    """The database cannot be used as it is (newer schema, not a database, disk full)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000)
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        with self.db.ensure_autocommit_on():
            mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{self.path}: could not switch to WAL mode (got {mode})")
        self.db.execute("PRAGMA synchronous = FULL")
        self.migrate()

    def close(self) -> None:
        self.db.close()

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version}, newer than this software "
                             f"({SCHEMA_VERSION}); refusing to touch it")
        for number, (_, sql) in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db.atomic():
                self.db.executescript(sql)
                self.db.execute(f"PRAGMA user_version = {number}")

    # -- recording ---------------------------------------------------------------------------

    def record(self, rating: Rating) -> None:
        """Commit the rating durably; return only when it is on disk."""
        wire = rating.to_wire()
        self.db["ratings"].insert({
            "id": rating.id, "level": int(rating.level), "window": rating.window,
            "staff_no": rating.staff_no, "rated_at": rating.rated_at,
            "payload": json.dumps(wire, ensure_ascii=False, separators=(",", ":")),
            "digest": wire_digest(wire), "recorded_at": _now(),
        })

    # -- outbox ------------------------------------------------------------------------------

    def pending(self, limit: int, max_bytes: int | None = None) -> list[dict]:
        """Oldest pending ratings first, as wire dicts, at most ``limit`` and about ``max_bytes``."""
        out, size = [], 0
        for row in self.db.query(
            "SELECT payload FROM ratings WHERE state = 'pending' ORDER BY seq LIMIT ?", [limit]
        ):
            size += len(row["payload"])
            if out and max_bytes is not None and size > max_bytes:
                break
            out.append(json.loads(row["payload"]))
        return out

    def mark_delivered(self, ids: list[str]) -> None:
        if not ids:
            return
        with self.db.atomic():
            self.db.conn.executemany(
                "UPDATE ratings SET state = 'delivered', delivered_at = ?, last_error = NULL "
                "WHERE id = ? AND state = 'pending'", [(_now(), i) for i in ids])

    def mark_dead(self, rating_id: str, status: int, reason: str) -> None:
        self.db.execute(
            "UPDATE ratings SET state = 'dead', dead_status = ?, dead_reason = ? "
            "WHERE id = ? AND state = 'pending'", [status, reason[:1000], rating_id])

    def note_attempt(self, ids: list[str], error: str | None) -> None:
        """Count a send attempt (and its error) for the technician's view; state is unchanged."""
        if not ids:
            return
        with self.db.atomic():
            self.db.conn.executemany(
                "UPDATE ratings SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                [(error[:500] if error else None, i) for i in ids])

    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "delivered": 0, "dead": 0}
        for row in self.db.query("SELECT state, count(*) AS n FROM ratings GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    def oldest_pending(self) -> str | None:
        row = self.db.execute(
            "SELECT recorded_at FROM ratings WHERE state = 'pending' ORDER BY seq LIMIT 1").fetchone()
        return row[0] if row else None

    def get(self, rating_id: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM ratings WHERE id = ?", [rating_id]))
        return rows[0] if rows else None
