"""Taking in a batch of ratings or events: each item is accepted, a duplicate, or rejected with a reason.

Exactly-once in effect rests on one rule: an item id is stored at most once. An item whose id is
already stored with the same digest is a harmless replay (``duplicate``); the same id with other
content is ``rejected`` and the item is kept in RejectedItem for inspection. Good items of a batch
are stored even when others in it are bad. Ratings and events (``Kind``) follow the same rule.
A bad rating opens its work order (``workorders``) in the transaction that stores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from terminal.core.event import Event as WireEvent
from terminal.core.rating import InvalidRating, Rating as WireRating

from . import workorders
from .models import BootClock, Rating, RejectedItem, Terminal, TerminalEvent

MAX_BATCH_ITEMS = 1000


@dataclass
class ItemResult:
    index: int
    id: str | None
    status: str  # accepted | duplicate | rejected
    reason: str | None = None

    def as_dict(self) -> dict:
        d = {"index": self.index, "id": self.id, "status": self.status}
        if self.reason:
            d["reason"] = self.reason
        return d


def note_boot(terminal: Terminal, clock: object) -> None:
    """Learn when the terminal's current boot began, in server time, from ``{"boot_id", "mono_ms"}``."""
    if not isinstance(clock, dict):
        return
    boot_id, mono_ms = clock.get("boot_id"), clock.get("mono_ms")
    if not (isinstance(boot_id, str) and 0 < len(boot_id) <= 64 and isinstance(mono_ms, int)
            and not isinstance(mono_ms, bool) and 0 <= mono_ms < 10 ** 13):
        return
    started = timezone.now() - timedelta(milliseconds=mono_ms)
    anchor, created = BootClock.objects.get_or_create(terminal=terminal, boot_id=boot_id,
                                                      defaults={"boot_started": started})
    if not created and started < anchor.boot_started:
        BootClock.objects.filter(pk=anchor.pk).update(boot_started=started)


@dataclass(frozen=True)
class Kind:
    """What a batch holds: its wire record, its model, the model's id field, and the model's fields."""

    name: str
    wire: type
    model: type
    id_field: str
    fields: object  # (wire record, digest, boots) -> model fields


def ingest(items: list, terminal: Terminal, kind: "Kind | None" = None) -> list[ItemResult]:
    kind = kind or RATINGS
    results: list[ItemResult] = []
    fresh: dict[str, tuple[int, WireRating, str]] = {}  # id -> (index, rating, digest)
    rejected: list[RejectedItem] = []

    for index, item in enumerate(items):
        raw_id = item.get("id") if isinstance(item, dict) else None
        raw_id = raw_id if isinstance(raw_id, str) else None
        try:
            rating = kind.wire.from_wire(item)
        except InvalidRating as exc:
            results.append(ItemResult(index, raw_id, "rejected", f"invalid: {exc}"))
            rejected.append(_rejected(kind, item, raw_id, f"invalid: {exc}"))
            continue
        if rating.terminal_id != terminal.terminal_id:
            why = f"terminal_mismatch: {kind.name} names terminal {rating.terminal_id}, request is signed by another"
            results.append(ItemResult(index, rating.id, "rejected", why))
            rejected.append(_rejected(kind, item, rating.id, why))
            continue
        digest = rating.digest()
        if rating.id in fresh:  # the same id twice in one batch
            if fresh[rating.id][2] == digest:
                results.append(ItemResult(index, rating.id, "duplicate"))
            else:
                results.append(ItemResult(index, rating.id, "rejected", "id_conflict: id repeated in batch with other content"))
                rejected.append(_rejected(kind, item, rating.id, "id_conflict within batch"))
            continue
        fresh[rating.id] = (index, rating, digest)
        results.append(None)  # filled below

    stored = dict(kind.model.objects.filter(**{f"{kind.id_field}__in": list(fresh)})
                  .values_list(kind.id_field, "digest"))
    boots = dict(BootClock.objects.filter(terminal=terminal, boot_id__in={r.boot_id for _, r, _ in fresh.values()})
                 .values_list("boot_id", "boot_started"))
    to_create = []
    for rating_id, (index, rating, digest) in fresh.items():
        if rating_id in stored:
            results[index] = _replay(kind, index, rating, digest, stored[rating_id], rejected)
        else:
            to_create.append((index, rating, digest))

    try:
        with transaction.atomic():
            insert_rows(kind.model, [kind.fields(r, d, boots) for _, r, d in to_create])
            RejectedItem.objects.bulk_create(rejected)
            if kind is RATINGS:
                workorders.open_for([r.id for _, r, _ in to_create if r.level.is_bad])
        for index, rating, _ in to_create:
            results[index] = ItemResult(index, rating.id, "accepted")
    except IntegrityError:
        # Another request stored some of these ids meanwhile: settle each item on its own.
        with transaction.atomic():
            RejectedItem.objects.bulk_create(rejected)
        for index, rating, digest in to_create:
            results[index] = _store_one(kind, index, rating, digest, boots)
    return results


def insert_rows(model, rows: list[dict]) -> None:
    """Insert new ratings (or events) with one prepared INSERT run by ``executemany``.

    Why not ``bulk_create``: on SQLite it compiles a statement of up to 999 parameters for every
    ~58 rows and builds a model object per row, which was half the server's time when a terminal
    drained a 100,000-rating backlog (bench/sync_drain.py). Columns and the preparation of values
    still come from the model's fields, so models.py stays the one schema; text and integers go to
    the driver as they are, times through the backend's own adapter, the rest through the field's
    ``get_db_prep_save``.
    """
    if not rows:
        return
    db = connections[router.db_for_write(model)]  # the connection itself, not the proxy: no lookup per value
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    prepare = []
    for f in fields:
        kind = f.get_internal_type()
        if kind in ("CharField", "TextField", "PositiveSmallIntegerField") and not f.null:
            prepare.append(None)  # str and int go to every driver as they are
        elif kind == "DateTimeField":
            prepare.append(db.ops.adapt_datetimefield_value)  # our values are timezone-aware already
        else:
            prepare.append(lambda value, f=f: f.get_db_prep_save(value, db))
    now = timezone.now()
    quote = db.ops.quote_name
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    values = []
    for row in rows:
        row = {**row, "received_at": now}
        values.append([row[f.attname] if p is None else p(row[f.attname]) for f, p in zip(fields, prepare)])
    with db.cursor() as cursor:
        cursor.executemany(sql, values)


def _store_one(kind: Kind, index: int, rating, digest: str, boots: dict) -> ItemResult:
    try:
        with transaction.atomic():
            kind.model.objects.create(**kind.fields(rating, digest, boots))
            if kind is RATINGS and rating.level.is_bad:
                workorders.open_for([rating.id])
        return ItemResult(index, rating.id, "accepted")
    except IntegrityError:
        stored = kind.model.objects.filter(**{kind.id_field: rating.id}).values_list("digest", flat=True).first()
        rejected: list[RejectedItem] = []
        result = _replay(kind, index, rating, digest, stored, rejected)
        RejectedItem.objects.bulk_create(rejected)
        return result


def _replay(kind: Kind, index: int, rating, digest: str, stored_digest: str | None, rejected: list) -> ItemResult:
    if stored_digest == digest:
        return ItemResult(index, rating.id, "duplicate")
    rejected.append(_rejected(kind, rating.to_wire(), rating.id, "id_conflict: id already stored with other content"))
    return ItemResult(index, rating.id, "rejected", "id_conflict: id already stored with other content")


def corrected_time(r, boots: dict) -> tuple[datetime, str]:
    """The best time for a rating or event: the terminal's own if NTP had synced it, else the boot's
    start in server time plus the monotonic clock, else (boot never heard of) the terminal's, marked so."""
    said = datetime.fromisoformat(r.rated_at if isinstance(r, WireRating) else r.at)
    if r.clock_synced:
        return said, "terminal_ntp"
    if r.boot_id in boots:
        return boots[r.boot_id] + timedelta(milliseconds=r.mono_ms), "server_boot"
    return said, "terminal_unsynced"


def _rating_fields(r: WireRating, digest: str, boots: dict) -> dict:
    rated_at, source = corrected_time(r, boots)
    return dict(
        rating_id=r.id, terminal_id=r.terminal_id, window_code=r.window, staff_no=r.staff_no or "",
        level=int(r.level), channel=int(r.channel), device=r.device.value, case_no=r.case_no or "",
        item_code=r.item_code or "", session_id=r.session_id or "", reasons=list(r.reasons), text=r.text,
        excluded=False, excluded_why="",
        rated_at=rated_at, rated_on=timezone.localdate(rated_at), rated_at_terminal=datetime.fromisoformat(r.rated_at),
        time_source=source,
        digest=digest, payload=r.to_wire(),
    )


def _event_fields(e: WireEvent, digest: str, boots: dict) -> dict:
    at, source = corrected_time(e, boots)
    return dict(
        event_id=e.id, terminal_id=e.terminal_id, window_code=e.window, kind=e.kind, why=e.why or "",
        staff_no=e.staff_no or "", session_id=e.session_id or "", case_no=e.case_no or "",
        level=int(e.level) if e.level is not None else None, at=at, at_terminal=datetime.fromisoformat(e.at),
        time_source=source, digest=digest, payload=e.to_wire(),
    )


RATINGS = Kind("rating", WireRating, Rating, "rating_id", _rating_fields)
EVENTS = Kind("event", WireEvent, TerminalEvent, "event_id", _event_fields)


def _rejected(kind: Kind, item: object, rating_id: str | None, reason: str) -> RejectedItem:
    terminal = item.get("terminal_id") if isinstance(item, dict) else None
    return RejectedItem(kind=kind.name,
        terminal_id=terminal[:64] if isinstance(terminal, str) else "",
        rating_id=(rating_id or "")[:64], reason=reason[:2000],
        payload=json.dumps(item, ensure_ascii=False, default=str)[:20000],
    )
