"""Rate limits in the shared database, so they hold across every app server behind the proxy.

``allow(key, limit, period_s)`` counts one more use of ``key`` in the current period and says
whether it is within ``limit``. ``tick`` drops the counts of periods long past.
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
                    Throttle.objects.create(key=key, period_start=start, count=1)
                    return limit >= 1
                return Throttle.objects.get(key=key, period_start=start).count <= limit
        except IntegrityError:
            continue
    return False


def forget_old(now: datetime | None = None, keep: timedelta = timedelta(days=1)) -> int:
    return Throttle.objects.filter(period_start__lt=(now or timezone.now()) - keep).delete()[0]
