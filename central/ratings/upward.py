"""Upward: every rating, default rating, re-check outcome, rectification, phone addition and change of
its case's reported facts reaches each configured platform (``UpwardPlatform``) exactly once in effect, in that platform's own fields and codes.

The way there is the terminal's own (``sync.outbox.Uploader``), end to end:
- ``queue`` puts one ``UpwardItem`` per platform that takes it, in the transaction that stores the
  rating or makes the change (ingest, the server-made channels, defaults, re-checks, work orders);
- ``PlatformOutbox`` is the Uploader's store: the oldest pending items, each encoded when it is
  sent from what we hold then (``exports.select_items`` and ``Lookups`` through the platform's profile), the item's
  id as the record's version, so an update is the same record with a higher version;
- ``PlatformClient`` is the Uploader's client: the terminal's HTTP client (``sync.client``) speaking
  the platform's interface, its requests signed with the platform's key (``X-System-Id``) and its
  answers verified, every platform failure turned into ``TransientError`` or ``BatchRefused``;
- an item is ``sent`` only on the platform's acknowledgement of that id and version, ``dead`` with
  the platform's reason; an administrator re-queues dead ones (a new version) from the admin.

The reference interface (what ``scripts/reference_platform.py`` implements, and docs/integrators.md "Reporting
upward" documents): ``POST <url><profile path>`` with ``{"<batch>": [records]}``, answered 200
``{"results": [{"id", "version", "status": accepted|duplicate|rejected, "reason"}]}``; a batch the
platform cannot read as a whole is 400 ``{"error": ...}`` or 413.

``rating-central push_upward`` runs the push, one process per platform at a time across nodes.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.db import connection
from django.utils import timezone

from sync.client import CentralClient
from sync.outbox import DrainResult, ItemAck, Outbox, TransientError, Uploader
from terminal.config import ConfigError, check_server_url
from terminal.core import signing

from . import exports
from .export_profile import TAKES, Profile, ProfileError, parse, record_kind
from .models import Policy, Rating, UpwardItem, UpwardPlatform

log = logging.getLogger("rating-central.upward")
UPDATES = {"validity", "rectification", "addition", "case"}  # sent as the same record, a higher version
#: a reported case's columns -> the data items (``export_profile.SOURCES``) a record carries from them
CASE_ITEMS = {"item_code": "item_code", "item_name": "item_name", "applicant_type": "applicant_type",
              "status": "case_status", "completed_at": "completed_at"}


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> Profile:
    return parse(text)


def profile_of(platform: UpwardPlatform) -> Profile:
    return _parsed(platform.profile)


# -- queueing, in the caller's transaction ------------------------------------------------------

def queue(ratings: list[tuple[str, str]], change: str | None = None, items: set[str] = frozenset()) -> int:
    """Queue ``ratings`` ((rating_id, device) pairs) for every enabled platform that takes the change:
    ``change`` None is a new rating (``default`` when the device is "system"), else ``validity``,
    ``rectification``, ``addition`` or ``case``, sent only to the platforms that take the rating itself. Call it
    inside the transaction that makes the rating or the change. A ``case`` change (its case's reported
    facts changed) is part of the record, not news a profile opts into: it goes to every platform
    whose profile sends one of ``items`` (data items), and nowhere else.

    A change first locks its ratings' rows, so two changes to one rating commit in the order of
    their versions (the items' ids). Else, on PostgreSQL, the later version could commit first and
    be sent (encoded as it stands, without the earlier change, not yet committed), and the earlier
    one, sent after it, be refused by the platform as older: its change never reported."""
    if not ratings:
        return 0
    from .ingest import insert_rows
    platforms = list(UpwardPlatform.objects.filter(enabled=True).only("pk", "profile"))
    if not platforms:
        return 0
    if change is not None:  # (a new rating's first item is made with it: nothing can come before)
        devices = dict(Rating.objects.select_for_update().filter(rating_id__in=[rid for rid, _ in ratings])
                       .order_by("pk").values_list("rating_id", "device"))
        ratings = [(rid, devices.get(rid, device)) for rid, device in ratings]
    now = timezone.now()
    rows = []
    for platform in platforms:
        try:
            profile = profile_of(platform)
            takes = profile.takes | ({"case"} if any(profile.field_for(i) for i in items) else set())
        except ProfileError:  # kept from being saved by the admin; if it happens, queue all (nothing lost)
            takes = TAKES | {"case"}
        for rating_id, device in ratings:
            kind = change or record_kind(device)
            # a change goes only where its record went: never an update of a default to a platform
            # that takes no defaults (it was a dead letter there, "channel 7 has no code")
            if kind in takes and record_kind(device) in takes:
                rows.append(_pending(platform, rating_id, kind, now))
    insert_rows(UpwardItem, rows)
    return len(rows)


def _pending(platform: UpwardPlatform, rating_id: str, change: str, now) -> dict:
    """A new outbox row, as ``insert_rows`` takes it."""
    return {"platform_id": platform.pk, "rating_id": rating_id, "change": change, "state": "pending",
            "attempts": 0, "last_error": "", "created_at": now, "acked_at": None}


def taken_ratings(profile: Profile):
    """The stored ratings a profile takes: every one, or all but system defaults."""
    return Rating.objects.all() if "default" in profile.takes else Rating.objects.exclude(device="system")


def queue_ids(rating_ids: list[str], change: str) -> int:
    """``queue`` for changes to stored ratings, by id."""
    return queue([(rid, "") for rid in rating_ids], change)


def queue_case(case_no: str, changed) -> int:
    """A case's report changed ``changed`` (its columns): each stored rating of it goes up again, an
    update of its record, to each platform that sends one of those facts (``queue``). A record
    carries its case's facts as they stand when it is sent; one sent before the report (the
    terminal's upload outran the business system's) or while the case was 已受理 would else keep
    an empty 申请人类型 or the old 办件状态 at the platform for ever. In the report's transaction."""
    items = {CASE_ITEMS[column] for column in changed if column in CASE_ITEMS}
    if not case_no or not items:
        return 0
    rating_ids = list(Rating.objects.filter(case_no=case_no).values_list("rating_id", flat=True))
    return queue([(rid, "") for rid in rating_ids], "case", items)


# -- what a profile must be able to code --------------------------------------------------------

def in_use(profile: Profile, platform: UpwardPlatform | None = None) -> dict[str, set]:
    """The values of each coded item that we hold, among the records the profile takes, and those
    the hall's policy will make (default ratings): what its code lists must cover before anything
    is sent. A value first met later (a call-back's channel, say) stops its item with the reason.
    ``platform``: only the records waiting to go to it. A push checks what it is about to send; a
    dead letter's value, already stopped with its reason, must not stop every push after it (the
    pusher's next start would else refuse for ever, and nothing behind it went)."""
    from .models import Case
    policy = Policy.current()
    taken = taken_ratings(profile)
    if platform is not None:
        taken = taken.filter(rating_id__in=UpwardItem.objects.filter(platform=platform, state="pending")
                             .values("rating_id"))
    channels = set(taken.order_by().values_list("channel", flat=True).distinct())
    if "default" in profile.takes:
        channels.add(policy.default_channel)
    return {"level": {1, 2, 3, 4, 5}, "channel": channels,
            "rating_no": set(taken.order_by().values_list("rating_no", flat=True).distinct()) | {1},
            "anonymous": {True, False}, "valid": {True, False},
            "system_default": {True, False} if "default" in profile.takes else {False},
            "applicant_type": set(Case.objects.order_by().values_list("applicant_type", flat=True).distinct()) | {""},
            "case_status": set(Case.objects.order_by().values_list("status", flat=True).distinct()) | {""},
            "operation": {"add", "update"}, "area_code": {settings.AREA_CODE}}


def unmapped(profile: Profile, platform: UpwardPlatform | None = None) -> list[str]:
    return profile.unmapped(in_use(profile, platform))


# -- the Uploader's store and client ----------------------------------------------------------

@dataclass(frozen=True)
class Waiting:
    """One item as the Uploader sees it: its key (record id @ version), the encoded record, its place."""

    id: str
    payload: str
    seq: int


def key(record_id: str, version: int) -> str:
    return f"{record_id}@{version}"


def _item_pk(item_key: str) -> int:
    return int(item_key.rpartition("@")[2])


class PlatformOutbox:
    """One platform's ``UpwardItem`` rows as the Uploader's store."""

    def __init__(self, platform: UpwardPlatform, profile: Profile):
        self.platform, self.profile = platform, profile

    def pending(self, limit: int, max_bytes: int | None = None, table: str = "", after: int = 0) -> list[Waiting]:
        """The oldest pending items after ``after``, each encoded from what we hold now, read in one
        query (the outbox joined to its ratings, their cases and closed work orders); an item the
        profile cannot code is stopped, dead with the reason, never guessed."""
        rows = exports.select_items(
            "i.platform_id = %s AND i.state = 'pending' AND i.id > %s", [self.platform.pk, after, limit],
            leading="i.id, i.change, ", joins=f"JOIN {UpwardItem._meta.db_table} i ON i.rating_id = r.rating_id",
            tail="ORDER BY i.id LIMIT %s")
        look, encode, id_field = exports.Lookups(), self.profile.encode, self.profile.id_field
        look.join_additions([rating for _, _, *rating in rows])
        out, size, unusable = [], 0, []
        for pk, change, *rating in rows:
            try:
                record = encode({**look.item(rating), "version": pk,
                                 "operation": "update" if change in UPDATES else "add"})
            except ProfileError as exc:  # a value met after the start: never guessed, kept for the admin
                unusable.append((pk, str(exc)))
                continue
            text = orjson.dumps(record).decode()
            size += len(text)
            if out and max_bytes and size > max_bytes:
                break
            out.append(Waiting(key(record[id_field], pk), text, pk))
        for pk, why in unusable:
            UpwardItem.objects.filter(pk=pk, state="pending").update(state="dead", last_error=why[:300])
            log.error("upward %s item %d not sent: %s", self.platform.code, pk, why)
        return out

    def mark_delivered(self, ids: list[str], table: str = "") -> None:
        _update(ids, "state = 'sent', acked_at = %s", [_db_time(timezone.now())])

    def mark_dead(self, item_key: str, status: int, reason: str, table: str = "") -> None:
        _update([item_key], "state = 'dead', last_error = %s", [f"HTTP {status}: {reason}"[:300]])

    def note_attempt(self, ids: list[str], error: str | None, table: str = "") -> None:
        _update(ids, "attempts = attempts + 1, last_error = %s", [(error or "")[:300]])


def _update(item_keys: list[str], assignments: str, params: list) -> None:
    """``UPDATE`` pending items by key, as plain SQL (the ORM compiles an ``IN`` of a thousand slowly)."""
    if not item_keys:
        return
    pks = [_item_pk(k) for k in item_keys]
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {UpwardItem._meta.db_table} SET {assignments} "
                       f"WHERE state = 'pending' AND id IN ({', '.join(['%s'] * len(pks))})", params + pks)


def _db_time(value):
    return connection.ops.adapt_datetimefield_value(value)


@dataclass(frozen=True)
class PlatformKey:
    """The platform's key id and secret, as the terminal's client signs with them (``terminal_id``:
    the name the client reads the signer's id by)."""

    terminal_id: str
    secret: str


class PlatformClient(CentralClient):
    """The terminal's HTTP client, speaking a platform's interface: requests signed as a system
    (``X-System-Id``), answers verified with the same secret, TLS to anything off the machine."""

    id_header = signing.HEADER_SYSTEM

    def __init__(self, url: str, key_id: str, secret: str, profile: Profile, ca_file: str = "", timeout: float = 30.0):
        super().__init__(url, PlatformKey(key_id, secret), timeout=timeout, ca_file=ca_file or None)
        self.http.headers["User-Agent"] = "rating-central-upward/1"
        self.profile = profile

    def batch_body(self, payloads: dict[str, str], clock: dict, outbox: Outbox) -> bytes:
        """The records as they were encoded, joined into the platform's batch, never encoded again."""
        return (f'{{"{self.profile.batch_key}":[' + ",".join(payloads.values()) + "]}").encode()

    def upload(self, payloads: dict[str, str], clock: dict, outbox: Outbox,
               body: bytes | None = None) -> tuple[dict[str, ItemAck], int]:
        body = body if body is not None else self.batch_body(payloads, clock, outbox)
        response = self.request("POST", self.profile.path, body, {"Content-Type": "application/json; charset=utf-8"})
        return self.acknowledgements(response, payloads, self._read), len(body)

    def _read(self, result: dict) -> tuple[str | None, str]:
        """A platform acknowledges a record by its id and version; an "already held" refusal
        (``duplicate_codes``) is what an acknowledgement lost on the way had said: a duplicate."""
        version, status = result["version"], result["status"]
        if not isinstance(version, int) or isinstance(version, bool):
            return None, status
        if status == "rejected" and result.get("code") in self.profile.duplicate_codes:
            status = "duplicate"
        return key(str(result["id"]), version), status


class NotConfigured(RuntimeError):
    """A platform the push cannot start for: no endpoint or key in the environment, or a profile
    that cannot code what we hold. Raised before anything is sent."""


def client_for(platform: UpwardPlatform, profile: Profile) -> PlatformClient:
    where = settings.UPWARD.get(platform.code)
    prefix = f"RATING_CENTRAL_UPWARD_{platform.code}"
    if not where or not where["url"] or not where["key_id"] or not where["secret"]:
        raise NotConfigured(f"{platform.code}: set {prefix}_URL, {prefix}_KEY_ID and {prefix}_SECRET")
    try:  # the rules of every address we call: https://, plain http to this machine only, no secret in it
        url = check_server_url(where["url"], f"{prefix}_URL")
    except ConfigError as exc:
        raise NotConfigured(f"{platform.code}: {exc}") from None
    return PlatformClient(url, where["key_id"], where["secret"], profile, where.get("ca_file", ""),
                          timeout=settings.UPWARD_TIMEOUT)


def push(platform: UpwardPlatform, until: float | None = None, check_codes: bool = True) -> DrainResult:
    """Send the platform's pending items, oldest first, until none is left or ``until`` (monotonic).
    NotConfigured before anything is sent; TransientError when the platform must be tried later.
    ``check_codes``: first make sure the profile codes every value waiting to go (a scan of the ratings;
    a long-running pusher does it once per profile version, and a value met later stops its item)."""
    try:
        profile = profile_of(platform)
    except ProfileError as exc:
        raise NotConfigured(str(exc)) from None
    missing = unmapped(profile, platform) if check_codes else []
    if missing:
        raise NotConfigured(f"{platform.code}: profile {profile.name} cannot code what we hold: " + "; ".join(missing))
    client = client_for(platform, profile)
    try:
        return Uploader(PlatformOutbox(platform, profile), client, batch_size=platform.batch_size,
                        outbox=Outbox(platform.code, profile.path, profile.batch_key)).drain(until)
    finally:
        client.close()


def resend(items) -> int:
    """Queue dead items again, each as a new version (what an administrator does once the cause is
    mended): the dead one is kept, marked ``resent``."""
    count = 0
    for item in items.filter(state="dead"):
        UpwardItem.objects.create(platform=item.platform, rating_id=item.rating_id, change=item.change)
        UpwardItem.objects.filter(pk=item.pk).update(state="resent")
        count += 1
    return count


def requeue_day(platform: UpwardPlatform, start, end) -> int:
    """Queue every rating of [start, end) the platform takes again, for this platform alone, each as a
    new version: what an administrator does for a day the reconciliation found the platform lacking
    (a record it lost is added again; one it holds is updated to the same content)."""
    ratings = taken_ratings(profile_of(platform)).filter(rated_at__gte=start, rated_at__lt=end).order_by("rated_at", "pk")
    now = timezone.now()
    rows = [_pending(platform, rid, record_kind(device), now) for rid, device in ratings.values_list("rating_id", "device")]
    from .ingest import insert_rows
    insert_rows(UpwardItem, rows)
    return len(rows)


def summary(platform: UpwardPlatform) -> dict:
    """Counts by state and the oldest pending item's time, for the upward page and the alert."""
    from django.db.models import Count
    counts = {state: 0 for state, _ in UpwardItem.STATES}
    counts.update(UpwardItem.objects.filter(platform=platform).values_list("state").annotate(n=Count("pk"))
                  .values_list("state", "n"))
    oldest = (UpwardItem.objects.filter(platform=platform, state="pending").order_by("pk")
              .values_list("created_at", flat=True).first())
    return {**counts, "oldest_pending": oldest}
