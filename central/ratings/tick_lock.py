"""One at a time across every node: with several app servers on one database each runs the timer
and the upward push, and two at once would do the same work twice (each step is idempotent, but an
alert's webhook, a default rating or a batch to a provincial platform is not work to race over).

PostgreSQL: a session advisory lock on the shared database, let go when the connection ends (a
killed node never leaves it held). SQLite: one machine by nature, so a file lock beside the database."""

from __future__ import annotations

import fcntl
import zlib
from contextlib import contextmanager

from django.conf import settings
from django.db import connection

ADVISORY_KEY = 0x52_41_54_45  # "RATE": the tick's lock number, the same on every node


def _key(name: str) -> int:
    return ADVISORY_KEY if name == "tick" else (ADVISORY_KEY << 32) | zlib.crc32(name.encode())


@contextmanager
def only_one(name: str):
    """True while this process holds ``name``; False, at once, when another process or node holds it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [_key(name)])
            held = cursor.fetchone()[0]
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [_key(name)])
        return
    with open(settings.DATA_DIR / f"{name}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def only_one_tick():
    return only_one("tick")
