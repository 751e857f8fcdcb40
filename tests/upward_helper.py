"""The central server's side of the upward chaos test, run as its own process against the test's
database (``RATING_CENTRAL_DATA`` / ``RATING_CENTRAL_DATABASE_URL`` from the environment):

    python tests/upward_helper.py fill N PLATFORM_CODE   N ratings through ingest, then re-checks and
                                                        rectifications of some bad ones (queued upward)
    python tests/upward_helper.py state                 what central holds and its outbox, as JSON
"""

import json
import os
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "central.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402

from central.ratings import auth, exports, workorders  # noqa: E402
from central.ratings.ingest import ingest  # noqa: E402
from central.ratings.models import Rating, Terminal, UpwardItem, UpwardPlatform, Window, WorkOrder  # noqa: E402
from terminal.core.channels import InputDevice  # noqa: E402
from terminal.core.levels import Level  # noqa: E402
from terminal.core.rating import Rating as WireRating  # noqa: E402

CST = timezone(timedelta(hours=8))


def fill(n: int, code: str) -> None:
    UpwardPlatform.objects.create(code=code, name="省平台（参考实现）", profile=exports.shipped_text("provincial"),
                                  batch_size=200)
    node = auth.enroll(auth.issue_code(Window.objects.get(code="W01"))[0])
    Terminal.objects.filter(pk=node.pk).update(enrolled_at=node.enrolled_at - timedelta(days=30))
    node.refresh_from_db()
    rng = random.Random(n)
    now = datetime.now(CST) - timedelta(days=2)
    for start in range(0, n, 1000):
        batch = []
        for i in range(start, min(n, start + 1000)):
            level = Level(rng.choices([5, 4, 3, 2, 1], weights=[70, 20, 5, 3, 2])[0])
            batch.append(WireRating.create(
                level=level, device=InputDevice.TOUCHSCREEN, now=now + timedelta(seconds=i), mono_ms=1000 + i,
                boot_id="c" * 32, clock_synced=True, terminal_id=node.terminal_id, window="W01", app_version="chaos",
                staff_no="SZ0101", reasons=("slow",) if level.is_bad else ()).to_wire())
        assert all(r.status == "accepted" for r in ingest(batch, node))
    chief = User.objects.create_user("chief")
    orders = list(WorkOrder.objects.select_related("rating").order_by("pk"))
    for i, order in enumerate(orders):
        if i % 3 == 0:  # rectified and closed: 整改反馈 goes up as an update
            workorders.advance(order, "contacted", "已联系")
            workorders.advance(order, "rectified", f"整改 {order.rating.rating_id[:8]}")
            workorders.advance(order, "closed")
        if i % 4 == 1:  # re-checked out: the record becomes invalid upward
            workorders.request_recheck(order, "误评")
            workorders.decide_recheck(order, exclude=True, user=chief)


def state() -> dict:
    closed = dict(WorkOrder.objects.filter(state="closed").values_list("rating__rating_id", "rectification"))
    return {"ratings": {rid: {"valid": not excluded, "rectification": closed.get(rid, "")}
                        for rid, excluded in Rating.objects.values_list("rating_id", "excluded")},
            "items": {s: UpwardItem.objects.filter(state=s).count() for s, _ in UpwardItem.STATES},
            "dead_reasons": list(UpwardItem.objects.filter(state="dead").values_list("last_error", flat=True)[:5])}


if __name__ == "__main__":
    if sys.argv[1] == "fill":
        fill(int(sys.argv[2]), sys.argv[3])
    else:
        print(json.dumps(state(), ensure_ascii=False))
