"""The terminal's SQLite database: the one module that owns its schema.

The kiosk and the sync daemon share one file in WAL mode; each process opens one ``Store`` (one
writer connection) with a busy timeout. ``record`` returns only after the rating is committed with
``synchronous=FULL``, so a rating whose thank-you was shown survives kill -9 and power loss. Each
rating row is also its own outbox entry: ``pending`` until the central server acknowledges it,
then ``delivered``; a rating the server refuses for good becomes ``dead`` (a dead letter), kept
with the server's status and reason and never retried automatically.

Every rating and event takes the next place in the terminal's hash chain (``core/chain.py``) in
the transaction that commits it: the ``chain`` table holds the last place and digest. A database
that had to be replaced (found corrupt and moved aside, or gone while the terminal's chain marker
remains) starts a new chain and keeps why in ``chain.restart`` until the recorder sends it as a
``chain_restart`` event, so the central server sees the restart explained.

The schema is versioned with ``PRAGMA user_version``; ``MIGRATIONS`` only ever grows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


from terminal.clock import SystemClock
from terminal.core import chain
from terminal.core.event import Event
from terminal.core.rating import Rating, wire_digest

log = logging.getLogger("rating-terminal")
BUSY_TIMEOUT_MS = 10_000
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26  # SQLite's primary result codes for a damaged file

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
    ("sync state and alerts", """
        CREATE TABLE sync_state (            -- what the sync daemon last saw: for status and heartbeat
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE alerts (                -- things a technician must hear about, sent with heartbeats
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL
        );
    """),
    ("held drafts and the events outbox", """
        CREATE TABLE held (                  -- a press whose session is not over: it becomes a rating
            id TEXT PRIMARY KEY,             -- whatever happens (walk-away, logout, power cut)
            payload TEXT NOT NULL,
            held_at TEXT NOT NULL
        );
        CREATE TABLE events (                -- logins, logouts, session events, suspected misuse
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
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
        CREATE INDEX events_outbox ON events (state, seq);
    """),
    ("the hash chain", """
        CREATE TABLE chain (                 -- the last place taken in this terminal's hash chain
            id INTEGER PRIMARY KEY CHECK (id = 1),
            epoch TEXT NOT NULL,
            seq INTEGER NOT NULL,            -- the last record's place (0: none yet)
            digest TEXT NOT NULL,            -- the last record's digest
            started_at TEXT NOT NULL,
            restart TEXT                     -- why this chain replaced another (JSON), until sent
        );
    """),
    ("invite API nonces", """
        CREATE TABLE invite_nonces (         -- signed requests' nonces the invite API still refuses to
            nonce TEXT PRIMARY KEY,          -- see again: kept across restarts (terminal/invite_api.py)
            signed_at INTEGER NOT NULL
        );
    """),
    ("the chain's identity", """
        -- the terminal id whose records the chain holds (NULL: none recorded since this column came):
        -- the central server counts each terminal's chain from 1, so a terminal enrolled again as
        -- another id begins a chain of its own
        ALTER TABLE chain ADD COLUMN terminal_id TEXT;
    """),
]
OUTBOXES = ("ratings", "events")  # tables sent to the central server, each row an outbox entry
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    """The database cannot be used as it is (newer schema, not a database, disk full, locked, an
    I/O error): nothing was written."""


class StoreFull(StoreError):
    """No room to write: the rating was NOT recorded, and the caller must not say thank you."""


@dataclass(frozen=True)
class Pending:
    """A rating waiting in the outbox: its id and its wire JSON text, exactly as recorded (sent as
    it is, never re-encoded, so what the server gets is byte for byte what the kiosk committed)."""

    id: str
    payload: str
    seq: int = 0  # its place in its outbox's order

    @property
    def wire(self) -> dict:
        return json.loads(self.payload)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Connection:
    """The store's SQLite connection: its own SQL, ``execute`` and ``query`` (rows as dicts), over the
    standard library. (It was sqlite-utils' ``Database``, of which the store used these two methods
    only; importing it, with its plugin manager, was 27 ms of the kiosk's start.)"""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params=()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def query(self, sql: str, params=()):
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return (dict(zip(names, row)) for row in cursor)

    def close(self) -> None:
        self.conn.close()


class Store:
    def __init__(self, path: str | Path, boot_id: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.boot_id = boot_id or SystemClock.boot_id()
        self.opens = 0  # how many times this Store has opened its file (``follow``)
        self._open_checked()

    def _open_checked(self) -> None:
        """Open the file at the path: checked, moved aside and salvaged if damaged, its chain
        begun again if it is new where a chain was before."""
        with _storage_errors_are_clear("cannot open the database", self.path), _lock(self.path):
            _undo_unfinished_move(self.path)
            existed = self.path.exists() or Path(f"{self.path}-wal").exists()
            boot_id = self.boot_id
            self.opens += 1
            self.checked = _needs_check(self.path, boot_id)  # whether this open ran SQLite's quick check
            moved = _move_aside_if_corrupt(self.path, boot_id) if self.checked else None
            before = getattr(self, "db", None)
            try:
                self._open()
                if moved:
                    salvaged = _salvage(moved, self)
                    self.alert("database_corrupt", f"{self.path.name} failed its integrity check and was moved to "
                                                   f"{moved.name}; {salvaged['ratings']} ratings and "
                                                   f"{salvaged['events']} events salvaged from it")
                    self._start_chain({"why": "database_corrupt", "moved_to": moved.name, "salvaged": salvaged,
                                       "previous": salvaged.pop("chain")})
            except BaseException:
                if moved:
                    if getattr(self, "db", None) is not before:
                        with contextlib.suppress(sqlite3.Error):
                            self.db.close()
                    _undo_unfinished_move(self.path)
                raise
            if moved:
                _forget_move(self.path)  # the salvage is committed: the move is done
                return
            if not existed and self._marker().exists():
                self._start_chain({"why": "database_missing", "previous": self._read_marker()})
            elif self._chain_head() is None:
                self._start_chain(None)  # a new terminal, or one upgraded from before the chain

    def _open(self) -> None:
        _private_file(self.path)
        # check_same_thread off: the kiosk's window shares its Store between the UI loop and the
        # invite API's threads, one call at a time under the Window's lock
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        self.db = Connection(conn)
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]  # outside any transaction
        if mode != "wal":
            raise StoreError(f"{self.path}: could not switch to WAL mode (got {mode})")
        self.db.execute("PRAGMA synchronous = FULL")
        self._file = _identity(self.path)  # under the lock: no one moves it meanwhile
        self.migrate()

    def follow(self) -> None:
        """Open the file at the path again if it is no longer the one this Store opened: the other
        process found it damaged and moved it aside (or someone deleted it). Before, the kiosk went
        on thanking for ratings committed into the moved file, which nothing reads or salvages, and
        the sync daemon uploaded from it, blind to the new one, until they were restarted.
        By the path's inode, never a descriptor of our own on the database (see ``_private_file``)."""
        if self._file is not None and _identity(self.path) == self._file:
            return
        log.warning("%s is no longer the file this process opened (moved aside or deleted): opening it again",
                    self.path)
        old, self._file = self.db, None  # None until the file at the path is open: tried again at each use
        try:
            self._open_checked()
        except BaseException:  # (a full disk, say) reads go on from the file this process had
            if self.db is not old:
                with contextlib.suppress(sqlite3.Error):
                    self.db.close()
                self.db = old
            raise
        with contextlib.suppress(sqlite3.Error):
            old.close()

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
        if version < 0:  # no version of ours: as an index, it ran the last migrations on a foreign schema
            raise StoreError(f"{self.path} has schema version {version}, which no version of this software "
                             "writes; refusing to touch it")
        for number, (_, sql) in enumerate(MIGRATIONS[version:], start=version + 1):
            # one script, one transaction: executescript would commit an outer one half-way
            try:
                self.db.conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
            except sqlite3.Error:
                if self.db.conn.in_transaction:
                    self.db.conn.rollback()
                raise

    @contextlib.contextmanager
    def _writing(self):
        """A write transaction that takes the write lock first (BEGIN IMMEDIATE, waiting up to the
        busy timeout). A deferred one that reads before it writes fails at once with "database is
        locked" when the other process (kiosk or sync) wrote in between."""
        if self.db.conn.in_transaction:
            yield
            return
        self.follow()
        self.db.execute("BEGIN IMMEDIATE")
        if _identity(self.path) != self._file:  # checked holding the write lock: a mover holds it to move
            self.db.conn.rollback()
            self.follow()
            self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.db.conn.in_transaction:
                self.db.conn.rollback()
            raise
        self.db.conn.commit()

    # -- recording ---------------------------------------------------------------------------

    def record(self, rating: Rating) -> Rating:
        """Commit the rating durably in its place in the chain (releasing a held draft of the same
        id, in the same transaction); return it, chained, only when it is on disk (StoreFull if
        there is no room)."""
        with _storage_errors_are_clear("cannot record rating", self.path), self._writing():
            rating, wire, digest = self._chained(rating)
            self._insert(wire, "pending", digest)
            self.db.execute("DELETE FROM held WHERE id = ?", [rating.id])
        return rating

    def hold(self, rating: Rating) -> None:
        """Keep a press whose session goes on (reasons, indicators): see ``release_held``."""
        with _storage_errors_are_clear("cannot hold rating", self.path), self._writing():
            self.db.execute("INSERT INTO held (id, payload, held_at) VALUES (?, ?, ?) "
                            "ON CONFLICT (id) DO UPDATE SET payload = excluded.payload",
                            [rating.id, json.dumps(rating.to_wire(), ensure_ascii=False), _now()])

    def release_held(self) -> list[Rating]:
        """At start: commit every held press as the rating it is (its session can no longer go on).
        One that cannot be read back (garbled on the card, inside a page the quick check finds sound)
        can be no rating: it stays held, with an alert for the technician. It raised, and the
        terminal could not start at all, the good presses beside it never committed."""
        released = []
        with _storage_errors_are_clear("cannot release held ratings", self.path), self._writing():
            for rating_id, payload in self.db.execute("SELECT id, payload FROM held").fetchall():
                try:
                    rating = Rating.from_wire(json.loads(payload))
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    self.alert("held_unreadable", f"held press {str(rating_id)[:64]!r} cannot be read back "
                                                  f"({type(exc).__name__}); it stays in the held table")
                    continue
                if self.get(rating_id) is None:
                    rating, wire, digest = self._chained(rating)
                    self._insert(wire, "pending", digest)
                    released.append(rating)
                self.db.execute("DELETE FROM held WHERE id = ?", [rating_id])
        return released

    def record_event(self, event: Event) -> Event:
        with _storage_errors_are_clear("cannot record event", self.path), self._writing():
            event, wire, digest = self._chained(event)
            self._insert_event(wire, "pending", digest)
        return event

    # One prepared INSERT each: sqlite-utils' table ``insert()``, used here before, looked the
    # table up again on every call, several statements per rating on the path to thank-you.
    def _insert(self, wire: dict, state: str, digest: str | None = None) -> None:
        self.db.execute(
            "INSERT INTO ratings (id, level, window, staff_no, rated_at, state, payload, digest, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [wire["id"], wire["level"], wire["window"], wire["staff_no"], wire["rated_at"], state,
             json.dumps(wire, ensure_ascii=False, separators=(",", ":")), digest or wire_digest(wire), _now()])

    def _insert_event(self, wire: dict, state: str, digest: str | None = None) -> None:
        self.db.execute(
            "INSERT INTO events (id, kind, recorded_at, state, digest, payload) VALUES (?, ?, ?, ?, ?, ?)",
            [wire["id"], wire["kind"], _now(), state, digest or wire_digest(wire),
             json.dumps(wire, ensure_ascii=False, separators=(",", ":"))])

    # -- outbox ------------------------------------------------------------------------------

    def pending(self, limit: int, max_bytes: int | None = None, table: str = "ratings", after: int = 0) -> list[Pending]:
        """Oldest pending rows of an outbox first (after ``after``, the last one already on its way),
        at most ``limit`` and about ``max_bytes`` of JSON."""
        self.follow()
        out, size = [], 0
        for seq, rating_id, payload in self.db.execute(
            f"SELECT seq, id, payload FROM {_outbox(table)} WHERE state = 'pending' AND seq > ? ORDER BY seq LIMIT ?",
            [after, limit]
        ):
            size += len(payload)
            if out and max_bytes is not None and size > max_bytes:
                break
            out.append(Pending(rating_id, payload, seq))
        return out

    def mark_delivered(self, ids: list[str], table: str = "ratings") -> None:
        if not ids:
            return
        now = _now()
        with _storage_errors_are_clear("cannot mark records delivered", self.path), self._writing():
            self.db.conn.executemany(
                f"UPDATE {_outbox(table)} SET state = 'delivered', delivered_at = ?, last_error = NULL "
                "WHERE id = ? AND state = 'pending'", [(now, i) for i in ids])

    def mark_dead(self, rating_id: str, status: int, reason: str, table: str = "ratings") -> None:
        with _storage_errors_are_clear("cannot mark a dead letter", self.path), self._writing():
            self.db.execute(f"UPDATE {_outbox(table)} SET state = 'dead', dead_status = ?, dead_reason = ? "
                            "WHERE id = ? AND state = 'pending'", [status, reason[:1000], rating_id])

    def note_attempt(self, ids: list[str], error: str | None, table: str = "ratings") -> None:
        """Count a send attempt (and its error) for the technician's view; state is unchanged."""
        if not ids:
            return
        with _storage_errors_are_clear("cannot count a send attempt", self.path), self._writing():
            self.db.conn.executemany(
                f"UPDATE {_outbox(table)} SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                [(error[:500] if error else None, i) for i in ids])

    def counts(self, table: str = "ratings") -> dict[str, int]:
        counts = {"pending": 0, "delivered": 0, "dead": 0}
        for row in self.db.query(f"SELECT state, count(*) AS n FROM {_outbox(table)} GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    def oldest_pending(self, table: str = "ratings") -> str | None:
        row = self.db.execute(
            f"SELECT recorded_at FROM {_outbox(table)} WHERE state = 'pending' ORDER BY seq LIMIT 1").fetchone()
        return row[0] if row else None

    # -- the invite API's nonces ------------------------------------------------------------

    def nonces(self) -> list[tuple[str, int]]:
        """The invite API's remembered nonces and their timestamps, oldest first."""
        return self.db.execute("SELECT nonce, signed_at FROM invite_nonces ORDER BY rowid").fetchall()

    def keep_nonce(self, nonce: str, signed_at: int, forget: list[str] = ()) -> None:
        """Remember a nonce durably (and forget those the invite API no longer needs), in one
        commit, before its request is taken: a restart must not make a captured request new."""
        with _storage_errors_are_clear("cannot keep the nonce", self.path), self._writing():
            self.db.conn.executemany("DELETE FROM invite_nonces WHERE nonce = ?", [(n,) for n in forget])
            self.db.execute("INSERT OR REPLACE INTO invite_nonces (nonce, signed_at) VALUES (?, ?)", [nonce, signed_at])

    # -- sync state and alerts ---------------------------------------------------------------

    def set_state(self, **values) -> None:
        with _storage_errors_are_clear("cannot note the state", self.path), self._writing():
            for key, value in values.items():
                self.db.execute("INSERT INTO sync_state (key, value) VALUES (?, ?) "
                                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                [key, json.dumps(value, ensure_ascii=False)])

    def state(self) -> dict:
        """What the sync daemon (and the kiosk) last noted. A value that is not JSON (a byte a card
        garbled inside a page the quick check passes, a hand edit) is logged and left out, as if
        never noted: it failed every reader, the sync daemon's start among them, for good."""
        state = {}
        for key, value in self.db.execute("SELECT key, value FROM sync_state"):
            try:
                state[key] = json.loads(value)
            except (ValueError, TypeError):
                log.error("%s: sync_state %r is not JSON; taken as not noted", self.path, str(key)[:64])
        return state

    def alert(self, kind: str, detail: str) -> None:
        with _storage_errors_are_clear("cannot keep an alert", self.path), self._writing():
            self.db.execute("INSERT INTO alerts (at, kind, detail) VALUES (?, ?, ?)", [_now(), kind, detail[:2000]])

    def alerts(self, limit: int = 20) -> list[dict]:
        return list(self.db.query("SELECT at, kind, detail FROM alerts ORDER BY id DESC LIMIT ?", [limit]))

    def get(self, rating_id: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM ratings WHERE id = ?", [rating_id]))
        return rows[0] if rows else None

    # -- the hash chain ----------------------------------------------------------------------

    def chain_head(self, terminal_id: str | None = None) -> dict:
        """``{"epoch", "seq", "digest"}`` of the last record: the heartbeat reports it, so the
        central server knows a record exists before it arrives (and misses it if it never does).
        ``terminal_id``: the identity reporting; ``{}`` when the chain holds another's records (the
        terminal was enrolled again and its new identity has made none yet): reported as the new
        one's, that head was a run of records missing from a chain the new terminal never had."""
        epoch, seq, digest, _, owner = self._chain_head()
        if terminal_id is not None and owner is not None and owner != terminal_id:
            return {}
        return {"epoch": epoch, "seq": seq, "digest": digest}

    def take_restart(self, record) -> Event | None:
        """If this chain replaced another, commit ``record(restart_info)`` (the recorder's
        ``chain_restart`` event) and forget the reason, in one transaction; else nothing. A reason
        that cannot be read back (garbled) is forgotten with an alert, and the central server finds
        the restart unexplained: it failed every record after it, out of service for good."""
        with _storage_errors_are_clear("cannot record the chain restart", self.path), self._writing():
            restart = self._chain_head()[3]
            if restart is None:
                return None
            try:
                event = self.record_event(record(json.loads(restart)))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                self.alert("chain_restart_unreadable", f"why this chain began cannot be read back "
                                                       f"({type(exc).__name__}); sent unexplained")
                event = None
            self.db.execute("UPDATE chain SET restart = NULL WHERE id = 1")
            return event

    def _chain_head(self) -> tuple[str, int, str, str | None, str | None] | None:
        return self.db.execute("SELECT epoch, seq, digest, restart, terminal_id FROM chain WHERE id = 1").fetchone()

    def _start_chain(self, restart: dict | None) -> None:
        epoch = chain.new_epoch()
        with self._writing():
            self.db.execute("INSERT OR REPLACE INTO chain (id, epoch, seq, digest, started_at, restart) "
                            "VALUES (1, ?, 0, ?, ?, ?)", [epoch, chain.GENESIS, _now(),
                                                          json.dumps(restart) if restart else None])
        from terminal.credentials import write_private  # the marker outlives a deleted database
        write_private(self._marker(), json.dumps({"epoch": epoch}))

    def _chained(self, record):
        """``record`` with the next place in the chain (inside a write transaction), the chain
        moved on to it, and its wire form and digest."""
        epoch, seq, digest, _, owner = self._chain_head()
        if seq and owner is not None and owner != record.terminal_id:
            # enrolled again as another terminal: its records begin a chain of their own, from 1,
            # as the central server counts each terminal's (else it missed 1..seq of the new one)
            log.info("chain: terminal %s after %s: a new chain", record.terminal_id, owner)
            self._start_chain(None)
            epoch, seq, digest = self._chain_head()[:3]
        record = dataclasses.replace(record, chain=chain.Link(epoch, seq + 1, digest if seq else chain.GENESIS))
        wire = record.to_wire()
        own = wire_digest(wire)
        self.db.execute("UPDATE chain SET seq = ?, digest = ?, terminal_id = ? WHERE id = 1",
                        [seq + 1, own, record.terminal_id])
        return record, wire, own

    def _marker(self) -> Path:
        return self.path.with_name(self.path.name + ".chain")

    def _read_marker(self) -> dict | None:
        try:
            marker = json.loads(self._marker().read_text())
            return {"epoch": str(marker["epoch"])}
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _outbox(table: str) -> str:
    if table not in OUTBOXES:
        raise ValueError(f"{table!r} is not an outbox ({', '.join(OUTBOXES)})")
    return table


@contextlib.contextmanager
def _storage_errors_are_clear(what: str, path: Path):
    """Every failure of the storage itself, not only a full disk (locked past the busy timeout, an
    I/O error, a file gone read-only or corrupt), becomes StoreError with a plain message naming
    ``what`` and the file (StoreFull when there is no room), so callers never say thank you for a
    record that is not kept. A broken rule of ours (a repeated id: IntegrityError; a misused
    connection: ProgrammingError) stays what it is."""
    try:
        yield
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
        raise
    except OSError as exc:  # the store's own files beside the database (its notes, its chain marker)
        if exc.errno == errno.ENOSPC or _no_room(path):
            raise StoreFull(f"{what}: {exc.strerror}: no space left on the disk ({path})") from None
        raise StoreError(f"{what}: {exc} ({path})") from None
    except sqlite3.DatabaseError as exc:
        if "full" in str(exc):
            raise StoreFull(f"{what}: {exc} ({path})") from None
        if _no_room(path):  # what SQLite calls an I/O error when its -shm cannot grow
            raise StoreFull(f"{what}: {exc}: no space left on the disk ({path})") from None
        raise StoreError(f"{what}: {exc} ({path})") from None


def _no_room(path: Path) -> bool:
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


# -- storage faults -------------------------------------------------------------------------------

def _private_file(path: Path) -> None:
    """Make the database file its owner's alone before SQLite opens it: SQLite creates it under the
    umask (0644 under 022) and gives its -wal and -shm the database's mode, and ratings carry raters'
    comments. Created 0600 (no moment readable by others); files an older version made are narrowed.

    Never through a descriptor of our own once the file exists: closing any descriptor of a file
    drops every POSIX lock the process holds on it, SQLite's included, so a second Store in the
    process (the sync daemon's two lanes; the kiosk's and the invite API's) wrote unguarded beside
    the first, and the database came out malformed. A new file has no lock to lose; an old one is
    narrowed by its path, and only when too open (a chmod changes the ctime, which brings the quick
    check back)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(OSError):  # (one missing, or not ours: SQLite says what it cannot open)
            if os.stat(part).st_mode & 0o077:
                os.chmod(part, 0o600)


@contextlib.contextmanager
def _lock(path: Path):
    """Kiosk and sync both open the database: one at a time may check it and move it aside."""
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at the path now (device and inode), or None if none is."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _check_note(path: Path) -> Path:
    """Where a passing check is noted, beside the database (``_needs_check``)."""
    return path.with_name(path.name + ".checked")


def _file_state(path: Path, boot_id: str) -> dict:
    """The database file as it is in this boot: which file, and its size and times, which any
    write to it changes (and ctime even a write that puts the mtime back)."""
    st = path.stat()
    return {"boot_id": boot_id, "file": [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]}


def _needs_check(path: Path, boot_id: str) -> bool:
    """Whether to run the quick check at this open: always, unless the check passed in this boot
    and the file has not been written since. It reads the whole database (a year at a busy window,
    120 MB: 150 ms from the page cache, seconds from an SD card), and every process that opens the
    store paid it at every start. What corrupts a database in WAL mode is a power cut or a card that
    loses what it said it wrote, and either comes with a new boot; a change to the file made in this
    boot, by anyone, brings the check back. (Frames in the WAL carry SQLite's own checksums; a card
    that decays at rest is found at the next boot.)"""
    if not path.exists():
        return False
    try:
        with open(_check_note(path), "rb") as f:
            return json.loads(f.read(4096)) != _file_state(path, boot_id)
    except (OSError, ValueError):
        return True


def _note_check(path: Path, boot_id: str) -> None:
    """Note a passing check: atomically, not durably. No fsync at every start for it: a power cut
    that loses it brings a new boot, which checks anyway. A full disk leaves no note, and the next
    open checks again."""
    from terminal.credentials import write_private
    with contextlib.suppress(OSError):
        write_private(_check_note(path), json.dumps(_file_state(path, boot_id)), durable=False)


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite's error says the file itself is damaged (or no database at all), rather than
    that it cannot be read now: a full disk (the -shm cannot grow: "disk I/O error"), a lock held
    past the busy timeout, a file it may not open. Only damage moves a database aside."""
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)


def _move_aside_if_corrupt(path: Path, boot_id: str) -> Path | None:
    """Run SQLite's quick check; a database that fails it is renamed (with its WAL), never deleted.
    One that passes is noted (``_needs_check``) once its check connection is closed, which may have
    moved the WAL into it. A check that cannot run (a full disk, a lock, an I/O error) raises: a
    sound database moved aside for it had its pending ratings stranded in the moved file, which
    nothing salvaged once the new database could not be made on the same full disk."""
    with contextlib.closing(sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)) as db:
        try:
            sound = db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        except sqlite3.DatabaseError as exc:
            if not _corrupt(exc):
                raise
            sound = False
        if not sound:
            # moved holding the write lock (if the damage allows it): a writer in another process
            # waits, then finds the path is another file (``Store.follow``) and never writes here
            with contextlib.suppress(sqlite3.DatabaseError):
                db.execute("BEGIN IMMEDIATE")
            moved = _aside_name(path)
            parts = [suffix for suffix in ("", "-wal", "-shm") if Path(f"{path}{suffix}").exists()]
            from terminal.credentials import write_private  # durably, before the first rename
            write_private(_move_note(path), json.dumps({"moved": moved.name, "parts": parts}))
            for suffix in parts:
                os.replace(f"{path}{suffix}", f"{moved}{suffix}")
            return moved
    _note_check(path, boot_id)
    return None


def _move_note(path: Path) -> Path:
    """Where a move aside is noted until its salvage is committed (``_undo_unfinished_move``)."""
    return path.with_name(path.name + ".moving")


def _undo_unfinished_move(path: Path) -> None:
    """Put a damaged database back where it was if its move aside did not finish: its salvage
    failed (a full disk), or the process was killed or the power cut while it salvaged. Left
    aside, its ratings were stranded: the next open found a database at the path (the new one,
    with at most an uncommitted salvage) and no reason to look at the moved one. Put back, the
    open checks, moves and salvages it again. The note says which parts were moved: a part
    still at the path is the damaged database's own (its rename had not come), one not moved
    is the new database's. No other process has the new one open: they open under the lock."""
    note = _move_note(path)
    try:
        noted = json.loads(note.read_text())
        moved = path.with_name(str(noted["moved"]))
        parts = [p for p in noted["parts"] if p in ("", "-wal", "-shm")]
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError):
        moved, parts = None, []  # unreadable: nothing can be put back by it
    if moved is not None and (moved.parent != path.parent or not moved.name.startswith(f"{path.name}.corrupt-")):
        moved, parts = None, []  # a note naming another file is no note of ours
    if moved is not None and Path(f"{moved}").exists():
        log.warning("%s was being moved aside to %s when the store stopped: put back to salvage again",
                    path, moved.name)
        for suffix in ("", "-wal", "-shm", "-journal"):  # (a -journal: the new one's, cut while it was made)
            if suffix in parts and Path(f"{moved}{suffix}").exists():
                os.replace(f"{moved}{suffix}", f"{path}{suffix}")
            elif suffix not in parts:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{path}{suffix}")
    _forget_move(path)


def _forget_move(path: Path) -> None:
    """Drop the note of a move, durably: come back after a power cut, it would undo a finished one."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_move_note(path))
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _aside_name(path: Path) -> Path:
    """A name no file has yet for a database moved aside: its time, and a number if that is taken.
    By time alone, a second corruption in the same second overwrote the first one's file (which
    holds what no salvage could read): likely on a board without a clock that boots offline, at
    the same saved time, and checks its database before any time server is reached."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    for number in range(1, 10_000):
        moved = path.with_name(f"{path.name}.corrupt-{stamp}" + (f"-{number}" if number > 1 else ""))
        if not any(os.path.lexists(f"{moved}{suffix}") for suffix in ("", "-wal", "-shm")):
            return moved
    raise StoreError(f"{path}: 10,000 databases moved aside at {stamp}; refusing to move another")


def _salvage(moved: Path, store: "Store") -> dict:
    """Copy every rating, event and held press still readable in a moved-aside database into the new one.

    Ids and payloads are kept as they were (with their places in the old chain), so a record that
    had been delivered stays delivered, one the server already holds is answered as a duplicate if
    it is sent again, and the central server can still check the old chain: nothing is doubled.
    Returns the counts, and the old chain's epoch and the last place salvaged from it.
    The copies are one transaction of their own: inserted outside one, they opened a transaction
    that every later write joined and none committed.
    """
    salvaged = {"ratings": 0, "events": 0}
    last: dict = {}
    with store._writing():
        for table, insert in (("ratings", store._insert), ("events", store._insert_event)):
            try:
                with contextlib.closing(sqlite3.connect(f"file:{moved}?mode=ro", uri=True)) as old:
                    for payload, state in old.execute(f"SELECT payload, state FROM {table} ORDER BY seq"):
                        try:
                            wire = json.loads(payload)
                            insert(wire, state)
                            salvaged[table] += 1
                            link = wire.get("chain") or {}
                            if isinstance(link.get("seq"), int) and link["seq"] > last.get("seq", 0):
                                last = {"epoch": str(link.get("epoch", ""))[:32], "seq": link["seq"]}
                        except (ValueError, KeyError, TypeError, AttributeError, sqlite3.IntegrityError):
                            continue
            except sqlite3.DatabaseError:
                pass  # read what we could; the moved file stays for a technician's sqlite3 .recover
        try:  # held presses too: each is a rating once the terminal starts (``release_held``)
            with contextlib.closing(sqlite3.connect(f"file:{moved}?mode=ro", uri=True)) as old:
                for row in old.execute("SELECT id, payload, held_at FROM held"):
                    store.db.execute("INSERT OR IGNORE INTO held (id, payload, held_at) VALUES (?, ?, ?)", row)
        except sqlite3.DatabaseError:
            pass
    try:
        with contextlib.closing(sqlite3.connect(f"file:{moved}?mode=ro", uri=True)) as old:
            epoch, seq = old.execute("SELECT epoch, seq FROM chain WHERE id = 1").fetchone()
            last = {**last, "epoch": epoch, "head_seq": seq}
    except (sqlite3.DatabaseError, TypeError):
        pass
    return {**salvaged, "chain": last or None}
