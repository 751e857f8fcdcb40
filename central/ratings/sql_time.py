"""A time read back with plain SQL (``ingest.select_in``, raw cursors), as the ORM would give it.

The drivers differ: PostgreSQL's gives an aware datetime; SQLite gives Django's stored text in UTC
or, through Django's converter, a naive datetime in UTC (never the process's local time, which
Django sets to TIME_ZONE). Every plain read of a time goes through ``aware``, so each compares and
prints the same on either database.
"""

from __future__ import annotations

from datetime import datetime, timezone


def aware(value) -> datetime | None:
    """``value`` as an aware datetime (UTC unless the driver said otherwise); None for none stored."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
