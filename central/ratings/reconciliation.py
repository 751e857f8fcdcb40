"""Daily reconciliation with each upward platform: does the platform hold what we hold?

For each day and platform, by channel and level in the platform's own codes (``"<channel>/<level>"``):
- ``ours``: the valid ratings we hold that the profile takes, rated that day in the profile's zone;
- ``acknowledged``: those of them whose every item to this platform the platform acknowledged;
- ``theirs``: the platform's own count, where its interface offers one (``counts_path``), fetched
  signed and believed only with its signed answer.

A day is ``mismatched`` once nothing of it waits to be sent and the three disagree: a dead letter,
a rating never queued, or a record the platform lost. The upward page shows it, and the
``upward_mismatch`` early-warning rule raises an alert for the platform; ``upward_backlog`` raises
one while the platform's oldest pending item is older than the rule's X minutes.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections import Counter
from urllib.parse import urlencode

from django.db.models import Exists, OuterRef
from django.utils import timezone

from sync.outbox import TransientError

from . import upward
from .export_profile import Profile, ProfileError
from .models import UpwardDay, UpwardItem, UpwardPlatform

log = logging.getLogger("rating-central.upward")
DAYS_BACK = 7  # each daily run checks the last week again: late acknowledgements and late losses show


def _keys(profile: Profile):
    """(channel, level) -> ``"<channel>/<level>"`` in the platform's codes, the code lists looked up once."""
    channels, levels = profile.code_list("channel"), profile.code_list("level")
    return lambda channel, level: f"{channels.get(channel, f'?{channel}')}/{levels.get(level, f'?{level}')}"


def _named(key: str) -> str:
    channel, _, level = key.partition("/")
    return f"渠道{channel}·等级{level}"


def _day_range(profile: Profile, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime.combine(day, datetime.time.min, profile.zone)
    return start, start + datetime.timedelta(days=1)


def reconcile(platform: UpwardPlatform, day: datetime.date, now: datetime.datetime | None = None) -> UpwardDay:
    """Count, compare and keep one day of one platform."""
    profile = upward.profile_of(platform)
    start, end = _day_range(profile, day)
    taken = upward.taken_ratings(profile).filter(rated_at__gte=start, rated_at__lt=end)
    key = _keys(profile)
    items = UpwardItem.objects.filter(platform=platform, rating_id=OuterRef("rating_id"))
    valid = taken.filter(excluded=False)
    ours = Counter(key(c, lv) for c, lv in valid.values_list("channel", "level"))
    acked = valid.filter(Exists(items.filter(state="sent"))).exclude(Exists(items.filter(state__in=("pending", "dead"))))
    acknowledged = Counter(key(c, lv) for c, lv in acked.values_list("channel", "level"))
    of_day = UpwardItem.objects.filter(platform=platform, rating_id__in=taken.values("rating_id"))
    pending, dead = of_day.filter(state="pending").count(), of_day.filter(state="dead").count()
    theirs, note = None, ""
    if platform.counts_path:
        try:
            theirs = their_counts(platform, profile, day)
        except (TransientError, upward.NotConfigured, ProfileError) as exc:
            note = f"平台计数未取得：{exc}"[:300]
    problems = []
    if not pending:
        if acknowledged != ours:
            problems.append(f"本方 {sum(ours.values())} 条有效评价，平台确认 {sum(acknowledged.values())} 条"
                            + (f"（死信 {dead}）" if dead else ""))
        if theirs is not None and Counter(theirs) != acknowledged:
            differ = sorted(k for k in set(theirs) | set(acknowledged) if theirs.get(k, 0) != acknowledged.get(k, 0))
            problems.append("平台计数与确认不符：" + "、".join(
                f"{_named(k)} 平台 {theirs.get(k, 0)} / 确认 {acknowledged.get(k, 0)}" for k in differ[:6]))
    row, _ = UpwardDay.objects.update_or_create(platform=platform, day=day, defaults=dict(
        ours=dict(ours), acknowledged=dict(acknowledged), theirs=theirs, pending=pending, dead=dead,
        mismatched=bool(problems), detail=("；".join(problems) or note)[:300], checked_at=now or timezone.now()))
    return row


def requeue(day_row: UpwardDay) -> int:
    """Send a mismatched day's records again (``upward.requeue_day``)."""
    start, end = _day_range(upward.profile_of(day_row.platform), day_row.day)
    return upward.requeue_day(day_row.platform, start, end)


#: a count's path below the platform's address: joined to it as written, so one not starting with "/"
#: (``@other-host/…``) would name another machine, and a query or fragment is ours to add
COUNTS_PATH = re.compile(r"/[^?#\s]*")


def their_counts(platform: UpwardPlatform, profile: Profile, day: datetime.date) -> dict[str, int]:
    """The platform's own count of that day, from its signed answer."""
    if not COUNTS_PATH.fullmatch(platform.counts_path):
        raise upward.NotConfigured(f"{platform.code}: counts_path must be a path starting with /, "
                                   f"got {platform.counts_path[:100]!r}")
    client = upward.client_for(platform, profile)
    try:
        answer = client.request("GET", f"{platform.counts_path}?{urlencode({'day': day.isoformat()})}")
        body = client._json(answer)
    finally:
        client.close()
    counts = body.get("counts")
    if body.get("day") != day.isoformat() or not isinstance(counts, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in counts.items()):
        raise TransientError("the platform's count is not the interface's answer for that day")
    return counts


def run(days_back: int = DAYS_BACK, today: datetime.date | None = None) -> list[UpwardDay]:
    """Reconcile the last ``days_back`` days, today included, with every enabled platform."""
    today = today or timezone.localdate()
    done = []
    for platform in UpwardPlatform.objects.filter(enabled=True):
        try:
            upward.profile_of(platform)
        except ProfileError as exc:
            log.error("reconciliation with %s skipped: %s", platform.code, exc)
            continue
        for back in range(days_back):
            done.append(reconcile(platform, today - datetime.timedelta(days=back)))
    return done


def due(now: datetime.datetime | None = None) -> bool:
    """Daily: when no reconciliation ran in the last 24 hours. A check stamped after ``now`` was
    stamped by a clock running ahead and is not believed: else, the clock put right, none would run
    until that date."""
    now = now or timezone.now()
    last = (UpwardDay.objects.filter(checked_at__lte=now).order_by("-checked_at")
            .values_list("checked_at", flat=True).first())
    return last is None or last < now - datetime.timedelta(hours=24)

