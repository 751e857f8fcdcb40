"""Taking in a batch of ratings or events: each item is accepted, a duplicate, or rejected with a reason.

Exactly-once in effect rests on one rule: an item id is stored at most once. An item whose id is
already stored with the same digest is a harmless replay (``duplicate``); the same id with other
content is ``rejected`` and the item is kept in RejectedItem for inspection. Good items of a batch
are stored even when others in it are bad. Ratings and events (``Kind``) follow the same rule.

A record counts only where it belongs (``Binding``): the signing terminal's own enrolled window,
a channel its device may send, a staff member on a roster that window's terminals were served,
a plausible time, and one counted rating per case and ``rating_no`` (一事一评). What breaks the
first three is refused (``REFUSALS``) and kept; a time outside enrollment..now is stored at the
time received and flagged ``time_implausible``; a second rating of a case's number is stored,
flagged ``duplicate_case`` and excluded from every score.

A bad rating opens its work order (``workorders``) in the transaction that stores it, and each
batch's places in the terminal's hash chain are noted for the chain check (``chains``).
"""

from __future__ import annotations

import hashlib
import json
import operator
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from terminal.core import signing
from terminal.core.chain import Link
from terminal.core.checks import MAX_DEPTH, MAX_MONO_MS, clean_text, ident, too_deep, shown
from terminal.core.event import Event as WireEvent
from terminal.core.rating import InvalidRating, Rating as WireRating, canonical, wire_digest

from . import chains, upward, workorders
from .models import BootClock, Case, Policy, Rating, RejectedItem, ServedStaff, Staff, Terminal, TerminalEvent, Window
from .sql_time import aware

MAX_BATCH_ITEMS = 1000

#: reason code -> what it means; every refused item is kept in RejectedItem with its code
REFUSALS = {
    "invalid": "the record is malformed (each bad field named)",
    "terminal_mismatch": "the record names another terminal than the one that signed the request",
    "window_mismatch": "the record names another window than the terminal's enrolled one",
    "channel_not_allowed": "the channel is not the one the record's device sends (4 touchscreen, 5 buttons)",
    "staff_not_on_roster": "the staff member was never on a roster served to this window's terminals",
    "id_conflict": "the id is already stored with other content",
}
DUPLICATE_CASE = "duplicate_case"
CASE_ELSEWHERE = "case_elsewhere"  # names a reported case of another window
FOLLOWUP_LATE = "followup_late"  # a 追加评价 after the follow-up period
TIME_IMPLAUSIBLE = "time_implausible"
#: how far a synced terminal's time may stray from its boot's timeline (the boot's start as the
#: server estimated it, plus the monotonic clock, which drifts by seconds a day) and still be taken
SYNCED_DRIFT = timedelta(minutes=15)


@dataclass
class ItemResult:
    index: int
    id: str | None
    status: str  # accepted | duplicate | rejected
    reason: str | None = None

    def as_dict(self) -> dict:
        d = {"index": self.index, "id": self.id, "status": self.status}
        if self.reason:
            d["reason"] = storable(self.reason)
        return d


def storable(text: str) -> str:
    """Text any answer, database and log can hold: a lone surrogate a client sent, echoed in a
    reason (an unknown field's name, say), is written as its escape instead."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def note_boot(terminal: Terminal, clock: object) -> None:
    """Learn when the terminal's current boot began, in server time, from ``{"boot_id", "mono_ms"}``."""
    if not isinstance(clock, dict):
        return
    boot_id, mono_ms = clock.get("boot_id"), clock.get("mono_ms")
    if not (isinstance(boot_id, str) and 0 < len(boot_id) <= 64 and clean_text(boot_id) and isinstance(mono_ms, int)
            and not isinstance(mono_ms, bool) and 0 <= mono_ms <= MAX_MONO_MS):
        return
    started = timezone.now() - timedelta(milliseconds=mono_ms)
    known = _boots.get((terminal.pk, boot_id))
    if known is not None and started >= known - BOOT_SLACK:
        return  # no better than what is stored: nothing to read or write (every heartbeat comes here)
    anchor, created = BootClock.objects.get_or_create(terminal=terminal, boot_id=boot_id,
                                                      defaults={"boot_started": started})
    if not created and started < anchor.boot_started:
        BootClock.objects.filter(pk=anchor.pk).update(boot_started=started)
    if len(_boots) > 200_000:
        _boots.clear()
    _boots[(terminal.pk, boot_id)] = min(started, anchor.boot_started)


#: (terminal, boot) -> the boot's start as stored, in this process: an estimate earlier by less
#: than BOOT_SLACK (network delay) is not worth a query
_boots: dict[tuple[int, str], datetime] = {}
BOOT_SLACK = timedelta(milliseconds=50)


@dataclass
class Binding:
    """Where a terminal's records may count: read once per batch."""

    terminal: Terminal
    window: str
    staff: set[str]  # the window's current roster and every roster it was served
    earliest: datetime  # enrollment, less the skew allowance
    latest: datetime  # now, plus the skew allowance
    now: datetime
    boots: dict = field(default_factory=dict)  # boot_id -> when that boot began, server time
    zone: object = None  # the hall's time zone, looked up once per batch
    department: int | None = None  # the window's department now: what its ratings and events belong to

    @classmethod
    def of(cls, terminal: Terminal, boot_ids: set[str]) -> "Binding":
        window = terminal.window
        staff = set(ServedStaff.objects.filter(window_code=window.code).values_list("staff_no", flat=True))
        staff |= set(Staff.objects.filter(window=window).values_list("staff_no", flat=True))
        now = timezone.now()
        skew = timedelta(seconds=signing.MAX_SKEW_SECONDS)
        boots = dict(BootClock.objects.filter(terminal=terminal, boot_id__in=boot_ids)
                     .values_list("boot_id", "boot_started")) if boot_ids else {}
        return cls(terminal, window.code, staff, terminal.enrolled_at - skew, now + skew, now, boots,
                   timezone.get_current_timezone(), window.department_id)

    def refusal(self, record) -> tuple[str, str] | None:
        """(code, why) if the record may not count at all, else None."""
        if record.terminal_id != self.terminal.terminal_id:
            return ("terminal_mismatch",
                    f"names terminal {record.terminal_id}, request is signed by {self.terminal.terminal_id}")
        if record.window != self.window:
            return "window_mismatch", f"names window {record.window}, the terminal is enrolled at {self.window}"
        if isinstance(record, WireRating) and record.channel != record.device.channel:
            return ("channel_not_allowed", f"channel {int(record.channel)} from a {record.device.value}; "
                    f"a terminal's {record.device.value} sends {int(record.device.channel)}")
        if record.staff_no and record.staff_no not in self.staff:
            return "staff_not_on_roster", f"staff {record.staff_no} was never on window {self.window}'s roster"
        return None

    def when(self, record) -> tuple[datetime, str, list[str], datetime]:
        """The record's time (corrected), its source, its flags, and the time as the terminal said: a
        time no clock could honestly give is replaced by the time received, so it cannot move into
        another period."""
        said = datetime.fromisoformat(record.rated_at if isinstance(record, WireRating) else record.at)
        at, source = corrected_time(record, self.boots, said)
        if not self.earliest <= at <= self.latest:
            return self.now, source, [TIME_IMPLAUSIBLE], said
        return at, source, [], said


@dataclass(frozen=True)
class Kind:
    """What a batch holds: its wire record, its model, the model's id field, and the model's fields."""

    name: str
    wire: type
    model: type
    id_field: str
    fields: object  # (wire record, digest, binding[, payload]) -> model fields


def ingest(items: list, terminal: Terminal, kind: "Kind | None" = None) -> list[ItemResult]:
    kind = kind or RATINGS
    results: list[ItemResult | None] = []
    fresh: dict[str, tuple[int, object, str]] = {}  # id -> (index, record, digest)
    rejected: list[RejectedItem] = []
    texts: dict[str, str] = {}  # id -> canonical JSON text: stored as it is, never encoded twice
    parsed = []
    some_too_deep = too_deep(items, MAX_DEPTH + 1)  # one look at the whole batch; item by item only then
    for index, item in enumerate(items):
        raw_id = item.get("id") if isinstance(item, dict) else None
        try:
            raw_id = ident(raw_id)  # answered and kept only if it is an id at all
        except ValueError:
            raw_id = None
        try:
            if some_too_deep and too_deep(item):
                raise InvalidRating({"(record)": f"nested more than {MAX_DEPTH} deep"})
            parsed.append((index, item, kind.wire.from_wire(item)))
        except InvalidRating as exc:
            results.append(ItemResult(index, raw_id, "rejected", f"invalid: {exc}"))
            rejected.append(_rejected(kind, item, raw_id, "invalid", str(exc), terminal))
            parsed.append(None)
            continue
        results.append(None)
    binding = Binding.of(terminal, {p[2].boot_id for p in parsed if p})

    for entry in parsed:
        if entry is None:
            continue
        index, item, record = entry
        refused = binding.refusal(record)
        if refused:
            code, why = refused
            results[index] = ItemResult(index, record.id, "rejected", f"{code}: {why}")
            rejected.append(_rejected(kind, item, record.id, code, why, terminal))
            continue
        text, digest = canonical(record.to_wire())
        if record.id in fresh:  # the same id twice in one batch
            if fresh[record.id][2] == digest:
                results[index] = ItemResult(index, record.id, "duplicate")
            else:
                results[index] = ItemResult(index, record.id, "rejected", "id_conflict: id repeated in batch with other content")
                rejected.append(_rejected(kind, item, record.id, "id_conflict", "id repeated in batch with other content",
                                          terminal))
            continue
        fresh[record.id] = (index, record, digest)
        texts[record.id] = text

    stored = stored_digests(kind, list(fresh))
    to_create = []
    for record_id, (index, record, digest) in fresh.items():
        if record_id in stored:
            results[index] = _replay(kind, index, record, digest, stored[record_id], rejected)
        else:
            to_create.append((index, record, digest))

    try:
        with transaction.atomic():
            rows = [kind.fields(r, d, binding, RawJSON(texts[r.id])) for _, r, d in to_create]
            if kind is RATINGS:
                settle_cases(rows)
            insert_rows(kind.model, rows)
            RejectedItem.objects.bulk_create(rejected, ignore_conflicts=True)  # kept once
            if kind is RATINGS:
                workorders.open_for([row["rating_id"] for row in rows
                                     if not row["excluded"] and row["level"] in workorders.BAD_LEVELS], fresh=True)
                upward.queue([(row["rating_id"], row["device"]) for row in rows])
            chains.note(terminal.terminal_id, [row for row in rows] + [_chain_of(r) for r in rejected])
        for index, record, _ in to_create:
            results[index] = ItemResult(index, record.id, "accepted")
    except IntegrityError:
        # Another request stored some of these ids (or a case's place) meanwhile: settle each item on its own.
        with transaction.atomic():
            RejectedItem.objects.bulk_create(rejected, ignore_conflicts=True)  # kept once
            chains.note(terminal.terminal_id, [_chain_of(r) for r in rejected])
        for index, record, digest in to_create:
            results[index] = _store_one(kind, index, record, digest, binding)
    return results


def stored_digests(kind: Kind, ids: list[str]) -> dict[str, str]:
    """id -> digest of those already stored (what tells a replay from a new record)."""
    return dict(select_in(kind.model, kind.id_field, ids, [kind.id_field, "digest"]))


def select_in(model, key: str, values: list, columns: list[str], where: str = "") -> list[tuple]:
    """``SELECT columns FROM model's table WHERE key IN values [AND where]``, as plain SQL: the ORM
    spends longer compiling an IN of a thousand values than the database spends answering it."""
    if not values:
        return []
    db = connections[router.db_for_read(model)]
    quote = db.ops.quote_name
    sql = (f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(model._meta.db_table)} "
           f"WHERE {quote(key)} IN ({', '.join(['%s'] * len(values))})" + (f" AND {where}" if where else ""))
    with db.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchall()


def settle_cases(rows: list[dict]) -> None:
    """一事一评, across every channel: the first rating of a case for each ``rating_no`` holds the
    case's place (``case_counted``); a later one is kept, flagged ``duplicate_case`` and excluded.
    A real rating takes the place from a system default rating, which stays stored and excluded.
    The unique constraint on the place settles a race between two requests (IntegrityError).

    A case its business system reported (``Case``) counts only at its own window: a rating naming
    it from another window is kept, flagged ``case_elsewhere`` and excluded, and takes no place,
    so no terminal can use up another window's case (one reported after such a rating came:
    ``settle_reported``). A follow-up rating (追加评价, ``rating_no`` 2)
    counts only within ``Policy.followup_days`` of the case's first rating (else of its
    completion): a later one is flagged ``followup_late`` and excluded."""
    cases = {row["case_no"] for row in rows if row["case_no"]}
    if not cases:
        return
    lock_cases(cases)
    held = {(c, n): (pk, device, rid, at) for c, n, pk, device, rid, at in select_in(
        Rating, "case_no", list(cases), ["case_no", "rating_no", "id", "device", "rating_id", "rated_at"],
        "case_counted")}
    reported = select_in(Case, "case_no", list(cases), ["case_no", "window_id", "completed_at"])
    codes = dict(Window.objects.filter(pk__in={w for _, w, _ in reported}).values_list("pk", "code")) if reported else {}
    known = {c: (codes[window], aware(completed)) for c, window, completed in reported}
    followup = timedelta(days=Policy.current().followup_days) if any(r["rating_no"] > 1 for r in rows) else None
    superseded = []
    for row in rows:
        if not row["case_no"]:
            continue
        case = known.get(row["case_no"])
        if case is not None and case[0] != row["window_code"]:
            _exclude(row, CASE_ELSEWHERE, _elsewhere_why(row["case_no"], case[0], row["window_code"]))
            continue
        place = (row["case_no"], row["rating_no"])
        if row["rating_no"] > 1:
            first = held.get((row["case_no"], 1))
            since = aware(first[3]) if first and first[3] else case[1] if case else None
            if since is not None and row["rated_at"] > since + followup:
                _exclude(row, FOLLOWUP_LATE, f"追加评价须在首次评价后 {followup.days} 天内，本条逾期，保留但不计入")
                continue
        holder = held.get(place)
        if holder is not None and holder[1] == "system" and row["device"] != "system":
            superseded.append((holder[0], row["rating_id"], holder[2]))
            holder = None
        if holder is None:
            row["case_counted"] = True
            held[place] = (None, row["device"], row["rating_id"], row["rated_at"])
        else:
            _exclude(row, DUPLICATE_CASE, f"一事一评：该办件已有第 {row['rating_no']} 次评价 {holder[2]}，本条保留但不计入")
    for pk, real, _ in superseded:
        Rating.objects.filter(pk=pk).update(case_counted=None, excluded=True,
                                            excluded_why=f"已收到真实评价 {real}，默认评价不计入"[:200])
    # the default no longer counts: platforms are told, as an update of that record
    upward.queue_ids([default_id for _, _, default_id in superseded], "validity")


def settle_reported(case_no: str, window_code: str) -> None:
    """The case's window just became known (its first report, or a report moving it): its places
    are that window's. A rating of it from another window, stored before (``settle_cases`` could
    not tell), loses its place: flagged ``case_elsewhere``, excluded, kept. The window's own first
    rating kept only because the place was taken (``duplicate_case``, ``case_elsewhere``) takes
    each place left free, and opens its work order if it is bad. The platforms hear each change as
    a validity update."""
    lock_cases([case_no], exclusive=True)
    ratings = list(Rating.objects.select_for_update().filter(case_no=case_no).order_by("rated_at", "id"))
    elsewhere = [r for r in ratings if r.window_code != window_code and not r.excluded]
    for rating in elsewhere:
        Rating.objects.filter(pk=rating.pk).update(
            case_counted=None, excluded=True, flags=[*rating.flags, CASE_ELSEWHERE],
            excluded_why=_elsewhere_why(case_no, window_code, rating.window_code)[:200])
    held = {r.rating_no for r in ratings if r.case_counted and r.window_code == window_code}
    taken = []
    for rating in ratings:
        if (rating.window_code == window_code and rating.rating_no not in held and rating.excluded
                and {DUPLICATE_CASE, CASE_ELSEWHERE} & set(rating.flags)):
            Rating.objects.filter(pk=rating.pk).update(
                case_counted=True, excluded=False, excluded_why="",
                flags=[f for f in rating.flags if f not in (DUPLICATE_CASE, CASE_ELSEWHERE)])
            held.add(rating.rating_no)
            taken.append(rating.rating_id)
    workorders.open_for(taken)
    upward.queue_ids([r.rating_id for r in elsewhere] + taken, "validity")


CASE_LOCK_CLASS = 0x43415345  # "CASE": the advisory locks' first key, apart from tick_lock's single keys
CASE_LOCK_BUCKETS = 64  # a batch of a thousand cases takes at most this many locks, not a thousand


def lock_cases(case_nos, exclusive: bool = False) -> None:
    """Hold ``case_nos`` until the transaction ends (PostgreSQL advisory locks; SQLite's IMMEDIATE
    transactions already take one writer at a time). Storing ratings holds them shared, so ratings
    never wait for each other (the unique place settles those); a report that makes a case's window
    known (``settle_reported``) holds its case exclusively. Else, under READ COMMITTED, a rating
    read the case's old window (or none) while a report moved it and settled the ratings it could
    see: the rating, committed after, counted at a window that no longer had the case."""
    db = connections[router.db_for_write(Rating)]
    if db.vendor != "postgresql":
        return
    buckets = sorted({zlib.crc32(c.encode("utf-8", "surrogatepass")) % CASE_LOCK_BUCKETS for c in case_nos})
    take = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with db.cursor() as cursor:  # one round trip, in the buckets' order
        cursor.execute(f"SELECT {take}(%s, b) FROM unnest(%s::int[]) AS b", [CASE_LOCK_CLASS, buckets])


def _elsewhere_why(case_no: str, case_window: str, rating_window: str) -> str:
    return f"办件 {case_no} 在 {case_window} 窗口办理，本条来自 {rating_window}，保留但不计入"


def _exclude(row: dict, flag: str, why: str) -> None:
    row["flags"] = [*row["flags"], flag]
    row["excluded"] = True
    row["excluded_why"] = why[:200]


def insert_rows(model, rows: list[dict]) -> None:
    """Insert new ratings (or events) with one prepared INSERT run by ``executemany`` (on
    PostgreSQL, one COPY: its fastest way to load rows, which unique constraints still guard).

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
    prepare: list[tuple[int, object]] = []  # (column, adapter) for the columns a driver cannot take as they are
    for column, f in enumerate(fields):
        kind = f.get_internal_type()
        if kind in ("CharField", "TextField", "PositiveSmallIntegerField", "BigIntegerField", "BooleanField",
                    "ForeignKey", "OneToOneField", "PositiveIntegerField", "IntegerField"):
            continue  # str, int, bool and None go to every driver as they are
        if kind == "DateTimeField":
            prepare.append((column, _sqlite_datetime if db.vendor == "sqlite" else db.ops.adapt_datetimefield_value))
        elif kind == "DateField":
            prepare.append((column, _sqlite_date if db.vendor == "sqlite" else db.ops.adapt_datefield_value))
        elif kind == "JSONField":
            empty = _raw_json(EMPTY_LIST, db)
            prepare.append((column, lambda value, f=f, empty=empty: None if value is None else _raw_json(value, db)
                            if type(value) is RawJSON else empty if value == [] else db.ops.adapt_json_value(value, f.encoder)))
        else:
            prepare.append((column, lambda value, f=f: f.get_db_prep_save(value, db)))
    names = [f.attname for f in fields]
    pick = operator.itemgetter(*names)  # a row's values in column order, at C speed
    if any(name not in rows[0] for name in names if name != "received_at"):  # a row that leaves some out
        defaults = {f.attname: f.get_default() for f in fields}  # (a work order's later steps)
        rows = [{**defaults, **row} for row in rows]
    received = names.index("received_at") if "received_at" in names else None
    prepare = [(column, adapt) for column, adapt in prepare if column != received]  # the same for every row
    now = timezone.now()
    now_value = _sqlite_datetime(now) if db.vendor == "sqlite" else now
    quote = db.ops.quote_name
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    values = []
    for row in rows:
        if received is not None:
            row["received_at"] = now
        value = list(pick(row))
        for column, adapt in prepare:
            value[column] = adapt(value[column])
        if received is not None:
            value[received] = now_value
        values.append(value)
    with db.cursor() as cursor:
        if db.vendor == "postgresql":  # COPY: PostgreSQL's own fastest way to load rows
            columns = ", ".join(quote(f.column) for f in fields)
            with db.wrap_database_errors:  # a unique violation is Django's IntegrityError, as from INSERT
                with cursor.cursor.copy(f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
        else:
            cursor.executemany(sql, values)


def _sqlite_datetime(value):
    """Django's own SQLite form of an aware time (UTC, ``YYYY-MM-DD HH:MM:SS[.ffffff]``), made
    without its per-value settings lookups: four times a rating on the way in."""
    return None if value is None else str(value.astimezone(dt_timezone.utc).replace(tzinfo=None))


def _sqlite_date(value):
    """Django's SQLite form of a date (``str``), without its per-value checks."""
    return None if value is None else str(value)


class RawJSON(str):
    """JSON text already made (a record's canonical form): stored as it is."""


EMPTY_LIST = RawJSON("[]")  # most ratings' reasons and flags


def _raw_json(text: RawJSON, db):
    if db.vendor == "postgresql":
        from psycopg.types.json import Jsonb
        return Jsonb(text, dumps=str)  # dumps(text) is the text itself: nothing encoded again
    return str(text)


def _store_one(kind: Kind, index: int, record, digest: str, binding: Binding) -> ItemResult:
    try:
        with transaction.atomic():
            row = kind.fields(record, digest, binding)
            if kind is RATINGS:
                settle_cases([row])
            insert_rows(kind.model, [row])
            if kind is RATINGS and not row["excluded"]:
                workorders.open_for([record.id])
            if kind is RATINGS:
                upward.queue([(row["rating_id"], row["device"])])
            chains.note(binding.terminal.terminal_id, [row])
        return ItemResult(index, record.id, "accepted")
    except IntegrityError:
        stored = kind.model.objects.filter(**{kind.id_field: record.id}).values_list("digest", flat=True).first()
        if stored is None:  # the id is free: it was the case's place, taken by a request just now
            return _store_one(kind, index, record, digest, binding)
        rejected: list[RejectedItem] = []
        result = _replay(kind, index, record, digest, stored, rejected)
        with transaction.atomic():
            RejectedItem.objects.bulk_create(rejected, ignore_conflicts=True)  # kept once
            chains.note(binding.terminal.terminal_id, [_chain_of(r) for r in rejected])
        return result


def _replay(kind: Kind, index: int, record, digest: str, stored_digest: str | None, rejected: list) -> ItemResult:
    if stored_digest == digest:
        return ItemResult(index, record.id, "duplicate")
    rejected.append(_rejected(kind, record.to_wire(), record.id, "id_conflict", "id already stored with other content",
                              None))
    return ItemResult(index, record.id, "rejected", "id_conflict: id already stored with other content")


def corrected_time(r, boots: dict, said: datetime | None = None) -> tuple[datetime, str]:
    """The best time for a rating or event: the terminal's own if NTP had synced it and it agrees
    with its boot's timeline (within SYNCED_DRIFT), else the boot's start in server time plus the
    monotonic clock, else (boot never heard of) the terminal's, marked so. A clock synced once in a
    boot and set back a year afterwards (by hand, or by a hostile time server) still says synced:
    its ratings were counted a year back, in another period, unmarked."""
    said = said or datetime.fromisoformat(r.rated_at if isinstance(r, WireRating) else r.at)
    on_boot = boots[r.boot_id] + timedelta(milliseconds=r.mono_ms) if r.boot_id in boots else None
    if r.clock_synced and (on_boot is None or abs(said - on_boot) <= SYNCED_DRIFT):
        return said, "terminal_ntp"
    if on_boot is not None:
        return on_boot, "server_boot"
    return said, "terminal_unsynced"



def _chain_fields(r) -> dict:
    link = r.chain
    return dict(chain_epoch=link.epoch if link else "", chain_seq=link.seq if link else None,
                chain_prev=link.prev if link else "")


def _rating_fields(r: WireRating, digest: str, binding: Binding, payload=None) -> dict:
    rated_at, source, flags, said = binding.when(r)
    return dict(
        rating_id=r.id, terminal_id=r.terminal_id, window_code=r.window, department_id=binding.department,
        staff_no=r.staff_no or "",
        level=int(r.level), channel=int(r.channel), device=r.device.value, case_no=r.case_no or "",
        item_code=r.item_code or "", session_id=r.session_id or "", reasons=list(r.reasons), text=r.text,
        excluded=False, excluded_why="",
        rated_at=rated_at, rated_on=rated_at.astimezone(binding.zone).date(), rated_at_terminal=said,
        time_source=source, digest=digest, payload=r.to_wire() if payload is None else payload, rating_no=r.rating_no,
        ticket_no=r.ticket_no or "",
        case_counted=None,
        flags=flags, comment_state="", comment_public="", comment_reviewed_at=None, **_chain_fields(r),
    )


def _event_fields(e: WireEvent, digest: str, binding: Binding, payload=None) -> dict:
    at, source, flags, said = binding.when(e)
    return dict(
        event_id=e.id, terminal_id=e.terminal_id, window_code=e.window, department_id=binding.department,
        kind=e.kind, why=e.why or "",
        staff_no=e.staff_no or "", session_id=e.session_id or "", case_no=e.case_no or "", ticket_no=e.ticket_no or "",
        level=int(e.level) if e.level is not None else None, at=at, at_terminal=said,
        time_source=source, digest=digest, payload=e.to_wire() if payload is None else payload, flags=flags,
        **_chain_fields(e),
    )


RATINGS = Kind("rating", WireRating, Rating, "rating_id", _rating_fields)
EVENTS = Kind("event", WireEvent, TerminalEvent, "event_id", _event_fields)


def _rejected(kind: Kind, item: object, record_id: str | None, code: str, why: str,
              signer: Terminal | None) -> RejectedItem:
    """A refused item as it came, with its code and, where it has a readable one, its chain place:
    only a place in the signing terminal's own chain (``signer``; None: the caller checked that
    the item names it), so no terminal can fill another's gap with an item it cannot store. It is
    kept under the terminal that sent it, never the one it names: a terminal uploading items that
    name another would otherwise have them listed as that other's refusals, and itself nowhere."""
    terminal = item.get("terminal_id") if isinstance(item, dict) else None
    terminal = terminal if isinstance(terminal, str) and clean_text(terminal) else None
    place, digest = {}, ""
    own = signer is None or terminal == signer.terminal_id
    if isinstance(item, dict) and own:
        try:
            link = Link.from_wire(item.get("chain"))
            place = dict(chain_epoch=link.epoch, chain_seq=link.seq, chain_prev=link.prev)
            digest = wire_digest(item)
        except (ValueError, TypeError, UnicodeError):
            pass
    sender = signer.terminal_id if signer is not None else terminal or ""
    text = _as_text(item)
    return RejectedItem(kind=kind.name, terminal_id=sender[:64],
        rating_id=(record_id or "")[:64], code=code, reason=storable(f"{code}: {why}")[:2000],
        payload=text[:MAX_KEPT_CHARS], digest=digest, fingerprint=fingerprint(kind.name, sender, code, text), **place,
    )


MAX_KEPT_CHARS = 20000  # of a refused item's JSON: the excerpt kept to read


def fingerprint(kind: str, sender: str, code: str, text: str) -> str:
    """One refusal's identity: the item as it came (its whole JSON ``text``, not the excerpt kept),
    why, and the terminal that sent it. The same batch sent again, its answer lost on the way, is
    refused again with the same fingerprint, and the item is kept once."""
    return hashlib.sha256(f"{kind}\n{sender}\n{code}\n{text}".encode("utf-8", "backslashreplace")).hexdigest()


def _as_text(item: object) -> str:
    """A refused item as JSON text any database holds: non-ASCII escaped (lone surrogates too).
    What JSON cannot write (nested past Python's recursion limit, say) is kept as a note of what it
    was: ``repr`` would fail on it the same way, and a refusal must never become a 500."""
    try:
        return json.dumps(item, default=str)
    except (ValueError, TypeError, RecursionError) as exc:
        return json.dumps(f"(not storable as JSON, {type(exc).__name__}: {shown(item)})")


def _chain_of(item: RejectedItem) -> dict:
    return {"chain_epoch": item.chain_epoch, "chain_seq": item.chain_seq}
