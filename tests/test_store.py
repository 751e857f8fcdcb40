import os
import sqlite3
import stat
import subprocess
import sys
import textwrap

import pytest

from terminal.core.levels import Level
from terminal.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError

from conftest import ROOT, make_rating


def test_new_database_is_wal_full_sync_and_current(tmp_path):
    store = Store(tmp_path / "t.db")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)


def test_database_and_its_wal_and_shm_are_the_owners_alone_whatever_the_umask(tmp_path):
    """Ratings carry raters' comments: the database, its -wal and -shm (SQLite gives them the
    database's mode) and a folder the store makes are never readable by others, even under umask 022."""
    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "data" / "t.db")
        store.record(make_rating(text="材料退回两次"))
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "data").iterdir()
                 if p.name.startswith("t.db") and not p.name.endswith(".lock")}
    finally:
        os.umask(old)
    assert {"t.db", "t.db-wal", "t.db-shm"} <= set(modes)
    assert all(mode == 0o600 for mode in modes.values()), modes
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_outbox_states(tmp_path):
    store = Store(tmp_path / "t.db")
    ratings = [store.record(make_rating(Level(lv))) for lv in (5, 4, 1)]
    assert [p.id for p in store.pending(10)] == [r.id for r in ratings]  # oldest first
    assert store.pending(10)[0].wire == ratings[0].to_wire()  # exactly what was recorded
    store.mark_delivered([ratings[0].id])
    store.mark_dead(ratings[2].id, 200, "invalid: level")
    assert store.counts() == {"pending": 1, "delivered": 1, "dead": 1}
    assert [p.id for p in store.pending(10)] == [ratings[1].id]
    dead = store.db.execute("SELECT id, dead_reason FROM dead_letters").fetchall()
    assert dead == [(ratings[2].id, "invalid: level")]
    # a delivered rating never goes back to pending or dead
    store.mark_dead(ratings[0].id, 200, "late")
    assert store.get(ratings[0].id)["state"] == "delivered"


def test_pending_respects_byte_budget_but_always_returns_one(tmp_path):
    store = Store(tmp_path / "t.db")
    for _ in range(5):
        store.record(make_rating(text="很" * 400))
    assert len(store.pending(10, max_bytes=10)) == 1
    assert 1 < len(store.pending(10, max_bytes=4000)) < 5


def test_same_id_twice_is_refused(tmp_path):
    store = Store(tmp_path / "t.db")
    r = make_rating()
    store.record(r)
    with pytest.raises(sqlite3.IntegrityError):
        store.record(r)
    assert store.counts()["pending"] == 1


def test_newer_schema_is_not_touched(tmp_path):
    path = tmp_path / "t.db"
    Store(path).db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this software"):
        Store(path)


@pytest.mark.parametrize("version", [-1, -2**31])
def test_a_negative_schema_version_is_not_touched(tmp_path, version):
    """user_version is a signed 32-bit number: a newer or foreign schema (or a bad write) can leave it
    negative. Taken as an index into the migrations, -1 ran the last one on the foreign tables and
    set the version to 0 (the next open would run them all on top), and -2**31 ran them all and
    opened the store at version -2**31 + 5."""
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE ratings_v9 (id TEXT)")
        db.execute(f"PRAGMA user_version = {version}")
    db.close()
    with pytest.raises(StoreError, match=f"schema version {version}, which no version of this software writes"):
        Store(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (version,)
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("ratings_v9",)]
    db.close()


def test_rating_survives_sigkill_right_after_record_returns(tmp_path):
    """A child records, says so, and is killed with SIGKILL at once: the rating is on disk."""
    path = tmp_path / "t.db"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]
        from conftest import make_rating
        from terminal.store import Store
        store = Store({str(path)!r})
        rating = make_rating()
        store.record(rating)
        print(rating.id, flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    rating_id = child.stdout.readline().strip()
    child.kill()
    child.wait()
    assert rating_id
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT state FROM ratings WHERE id = ?", [rating_id]).fetchall() == [("pending",)]


def test_a_second_store_opened_in_the_process_leaves_the_first_ones_locks_alone(tmp_path):
    """A store opening the database must not open and close a descriptor of its own on it: closing
    any descriptor of a file drops every POSIX lock the process holds on it, SQLite's too. With the
    first store's shared lock gone, another process closing the database took itself for the last
    one there, checkpointed and deleted the write-ahead log under the first store's feet, and the
    database came out malformed (the chaos test; the sync daemon's two lanes in production)."""
    import sqlite3
    import subprocess
    import sys
    path = tmp_path / "t.db"
    first = Store(path)
    first.record(make_rating())
    Store(path).close()  # a second store in the same process, opened and closed while the first is open
    subprocess.run([sys.executable, "-c", "import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1])\n"
                    "db.execute('SELECT count(*) FROM ratings').fetchone()\ndb.close()\n", str(path)],
                   check=True, timeout=30)  # another process reads, and closes its connection
    assert path.with_name("t.db-wal").exists(), "another process deleted the log of a database this one has open"
    first.record(make_rating())
    first.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert check.execute("SELECT count(*) FROM ratings").fetchone() == (2,)
