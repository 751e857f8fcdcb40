"""Default ratings (默认评价): a service invited for rating and left unrated gets the system default.

A service is known to the server by its ``invited`` event (the business system's invite or the
请评价 key): by its case number when it has one, else by its rating session; and by a case its
business system reported completed (``Case``), whichever channel was meant to rate it. When no rating
holds that case's place (``counted_rating_of``: a rating kept but not counted does not rate it) and
none of that session has arrived, from any channel, ``Policy.default_after_days`` natural days (7)
after the invite or the completion,
it gets one rating at ``Policy.default_level`` (基本满意) on ``Policy.default_channel`` (7, 系统默认评价).

Idempotent by construction: a default rating's id is derived from its case or session, and the
ids are unique, so running the command twice, or on two servers, makes one. It never touches a
real rating: if one arrives late (a terminal offline for over a week), the default is kept but
excluded from the scores, naming the real rating.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from . import upward, workorders
from .models import Case, Policy, Rating, TerminalEvent, Window, counted_rating_of

PREFIX = "default-"


@dataclass
class Outcome:
    created: int
    superseded: int


def default_id(key: str) -> str:
    return PREFIX + hashlib.sha256(key.encode()).hexdigest()[:40]


def service_key(case_no: str, session_id: str) -> str:
    return f"case:{case_no}" if case_no else f"session:{session_id}"


def _real(ratings):
    return ratings.exclude(device="system")


def apply(now: datetime.datetime | None = None) -> Outcome:
    now = now or timezone.now()
    policy = Policy.current()
    cutoff = now - datetime.timedelta(days=policy.default_after_days)
    rated_session = Exists(Rating.objects.filter(session_id=OuterRef("session_id")))
    rated_case = Exists(counted_rating_of(OuterRef("case_no")))
    # a case reported at another window is that window's, as its ratings are (ingest.settle_cases):
    # an invitation naming it gives it no default here, and its own default comes from the report
    elsewhere = Exists(Case.objects.filter(case_no=OuterRef("case_no")).exclude(window__code=OuterRef("window_code")))
    waiting = (TerminalEvent.objects.filter(kind="invited", at__lte=cutoff).exclude(session_id="")
               .filter(~rated_session).filter(Q(case_no="") | ~rated_case).filter(~elsewhere).order_by("at"))
    made: dict[str, Rating] = {}
    departments = dict(Window.objects.values_list("code", "department_id"))  # what each default counts for
    for event in waiting.iterator(chunk_size=1000):
        key = service_key(event.case_no, event.session_id)
        rating_id = default_id(key)
        if rating_id in made:
            continue  # the same case invited twice: one service, one rating
        rated_at = event.at + datetime.timedelta(days=policy.default_after_days)
        payload = {"id": rating_id, "kind": "system_default", "service": key, "invited_event": event.event_id,
                   "level": policy.default_level, "channel": policy.default_channel,
                   "after_days": policy.default_after_days}
        made[rating_id] = Rating(
            rating_id=rating_id, terminal_id=event.terminal_id, window_code=event.window_code,
            department_id=departments.get(event.window_code),
            staff_no=event.staff_no, level=policy.default_level, channel=policy.default_channel, device="system",
            case_no=event.case_no, session_id=event.session_id,
            item_code=(event.payload or {}).get("item_code") or "", rated_at=rated_at, rated_on=timezone.localdate(rated_at),
            rated_at_terminal=rated_at,
            time_source="server_default", rating_no=1, case_counted=True if event.case_no else None,
            digest=hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest(), payload=payload)
    # a case its business system reported done, that no channel rated and no invitation covered
    rated = Exists(counted_rating_of(OuterRef("case_no")))
    for case in (Case.objects.filter(status="completed", completed_at__lte=cutoff).filter(~rated)
                 .select_related("window", "system").order_by("completed_at").iterator(chunk_size=1000)):
        key = service_key(case.case_no, "")
        rating_id = default_id(key)
        if rating_id in made:
            continue
        rated_at = case.completed_at + datetime.timedelta(days=policy.default_after_days)
        payload = {"id": rating_id, "kind": "system_default", "service": key, "reported_by": case.system.system_id,
                   "level": policy.default_level, "channel": policy.default_channel,
                   "after_days": policy.default_after_days}
        made[rating_id] = Rating(
            rating_id=rating_id, terminal_id=case.system.system_id, window_code=case.window.code,
            department_id=case.window.department_id,
            staff_no=case.staff_no, level=policy.default_level, channel=policy.default_channel, device="system",
            case_no=case.case_no, item_code=case.item_code, rated_at=rated_at, rated_on=timezone.localdate(rated_at),
            rated_at_terminal=rated_at, time_source="server_default", rating_no=1, case_counted=True,
            digest=hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest(), payload=payload)
    with transaction.atomic():
        already = set(Rating.objects.filter(rating_id__in=list(made)).values_list("rating_id", flat=True))
        fresh = [r for rid, r in made.items() if rid not in already]
        Rating.objects.bulk_create(fresh, batch_size=500, ignore_conflicts=True)
        # a real rating that took the case's place meanwhile wins the unique place and the default is
        # not stored: only what was stored is a default, with its work order and upward record (else
        # the outbox kept an item of no rating, pending for ever)
        stored = set(Rating.objects.filter(rating_id__in=[r.rating_id for r in fresh]).values_list("rating_id", flat=True))
        fresh = [r for r in fresh if r.rating_id in stored]
        workorders.open_for([r.rating_id for r in fresh])
        upward.queue([(r.rating_id, "system") for r in fresh])
        superseded = supersede()
    return Outcome(len(fresh), superseded)


def supersede() -> int:
    """Exclude, and keep, each default rating whose service got a real rating after all: one of its
    session, or one holding its case's place (a rating of the case that does not count leaves the
    default counted)."""
    count = 0
    live = Rating.objects.filter(device="system", excluded=False)
    late_by_session = _real(Rating.objects.filter(session_id=OuterRef("session_id")).exclude(session_id=""))
    late_by_case = _real(counted_rating_of(OuterRef("case_no")))
    for default in live.filter(Exists(late_by_session) | Exists(late_by_case)).iterator():
        real = (_real(Rating.objects.filter(session_id=default.session_id).exclude(session_id="")).first()
                or _real(counted_rating_of(default.case_no)).first())
        Rating.objects.filter(pk=default.pk).update(
            excluded=True, case_counted=None, excluded_why=f"已收到真实评价 {real.rating_id}，默认评价不计入"[:200])
        upward.queue_ids([default.rating_id], "validity")
        count += 1
    return count
