"""Upgrading a terminal: a database written by the previous release (every migration but the last),
with ratings still waiting, is migrated when the new software opens it, keeps every rating, and
delivers the waiting ones once."""

import json
import sqlite3
import subprocess

import pytest

from terminal.core.levels import Level
from terminal.store import MIGRATIONS, SCHEMA_VERSION, wire_digest

from conftest import BIN, make_rating

pytestmark = pytest.mark.slow


def previous_release_database(path, ratings, delivered):
    """The file as the release before this one left it."""
    db = sqlite3.connect(path)
    for number, (_, sql) in enumerate(MIGRATIONS[:-1], start=1):
        db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    for rating in ratings:
        wire = rating.to_wire()
        db.execute("INSERT INTO ratings (id, level, window, staff_no, rated_at, payload, digest, recorded_at, state) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [wire["id"], wire["level"], wire["window"], wire["staff_no"], wire["rated_at"],
                    json.dumps(wire, ensure_ascii=False, separators=(",", ":")), wire_digest(wire),
                    "2026-11-20T08:00:00+00:00", "delivered" if rating.id in delivered else "pending"])
    db.commit()
    db.close()


def test_upgrade_keeps_every_rating_and_delivers_the_waiting_ones(central, terminal_config, tmp_path):
    creds = central.enroll()
    config = terminal_config(server=central.url)
    data = tmp_path / "data"
    data.mkdir()
    creds.save(data)
    ratings = [make_rating(Level(1 + i % 5), terminal_id=creds.terminal_id, reasons=("slow",) if i % 5 < 2 else ())
               for i in range(300)]
    delivered = {r.id for r in ratings[:20]}  # sent before the upgrade: never sent again
    previous_release_database(data / "terminal.db", ratings, delivered)
    assert SCHEMA_VERSION > len(MIGRATIONS[:-1])

    done = subprocess.run([str(BIN / "rating-sync"), "--config", str(config), "run", "--once"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    db = sqlite3.connect(data / "terminal.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    states = dict(db.execute("SELECT state, count(*) FROM ratings GROUP BY state").fetchall())
    assert states == {"delivered": 300}
    db.close()
    stored = central.query("SELECT rating_id, digest FROM ratings_rating WHERE terminal_id = ?", [creds.terminal_id])
    assert {rid for rid, _ in stored} == {r.id for r in ratings} - delivered  # the 280 waiting, once each
    assert len(stored) == 280
