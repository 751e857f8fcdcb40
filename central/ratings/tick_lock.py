"""One ``tick`` at a time across every node: with several app servers on one database each runs the
timer, and two ticks at once would do the same work twice (each step is idempotent, but an alert's
webhook or a default rating is not work to race over).

PostgreSQL: a session advisory lock on the shared database, let go when the connection ends (a
killed node never leaves it held). SQLite: one machine by nature, so a file lock beside the database."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager

from django.conf import settings
from django.db import connection

ADVISORY_KEY = 0x52_41_54_45  # "RATE": the lock's number, the same on every node


@contextmanager
def only_one_tick():
    """True while this process holds the tick; False, at once, when another node's tick runs."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_KEY])
            held = cursor.fetchone()[0]
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_KEY])
        return
    with open(settings.DATA_DIR / "tick.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
