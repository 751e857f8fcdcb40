"""Rate limits in the shared database, so they hold across every app server behind the proxy.

``allow(key, limit, period_s)`` counts one more use of ``key`` in the current period and says
whether it is within ``limit``. ``tick`` drops the counts of periods that have ended (each row
keeps its own end: a count over a case's whole rating period must outlive a day).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .models import Throttle


def allow(key: str, limit: int, period_s: int, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    start = datetime.fromtimestamp(int(now.timestamp()) // period_s * period_s, dt_timezone.utc)
    key = key[:100]
    for _ in range(2):  # a first use raced by another request: count again on its row
        try:
            with transaction.atomic():
                if not Throttle.objects.filter(key=key, period_start=start).update(count=F("count") + 1):
                    Throttle.objects.create(key=key, period_start=start, period_end=start + timedelta(seconds=period_s),
                                            count=1)
                    return limit >= 1
                return Throttle.objects.get(key=key, period_start=start).count <= limit
        except IntegrityError:
            continue
    return False


def forget_old(now: datetime | None = None) -> int:
    """Drop the counts of periods that have ended; how many."""
    return Throttle.objects.filter(period_end__lt=now or timezone.now()).delete()[0]
