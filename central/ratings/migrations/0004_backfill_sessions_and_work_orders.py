"""Upgrading a server that already holds ratings: fill ``session_id`` from each stored payload, and
open the work order every bad rating received before work orders existed should have. A new or
upgraded server also gets a starting set of early-warning rules, which the hall can edit."""

from django.db import migrations
from django.utils import timezone


def backfill(apps, schema_editor):
    from central.ratings.workorders import deadlines  # pure: dates and the policy's numbers

    Rating = apps.get_model("ratings", "Rating")
    Window = apps.get_model("ratings", "Window")
    WorkOrder = apps.get_model("ratings", "WorkOrder")
    policy = apps.get_model("ratings", "Policy").objects.get_or_create(pk=1)[0]
    for rating in Rating.objects.filter(session_id="").only("pk", "payload").iterator(chunk_size=2000):
        session = rating.payload.get("session_id") if isinstance(rating.payload, dict) else None
        if isinstance(session, str) and session:
            Rating.objects.filter(pk=rating.pk).update(session_id=session[:64])
    departments = dict(Window.objects.values_list("code", "department_id"))
    orders = []
    for pk, window_code, received_at in (Rating.objects.filter(level__lte=2, work_order__isnull=True)
                                         .values_list("pk", "window_code", "received_at").iterator()):
        opened = timezone.localdate(received_at)
        orders.append(WorkOrder(rating_id=pk, window_code=window_code, department_id=departments.get(window_code),
                                opened_on=opened, **deadlines(opened, policy)))
    WorkOrder.objects.bulk_create(orders, batch_size=500)


STARTING_RULES = [
    ("同一窗口 24 小时内差评 3 条", "bad_burst", dict(threshold=3, hours=24)),
    ("终端离线超过 30 分钟", "offline", dict(minutes=30)),
    ("按键盒断开超过 10 分钟", "box_disconnected", dict(minutes=10)),
    ("终端待上传超过 500 条", "backlog", dict(threshold=500)),
    ("同一窗口 1 小时内疑似误按/刷评 10 次", "misuse_burst", dict(threshold=10, hours=1)),
    ("存在逾期工单", "overdue", dict(threshold=1)),
]


def starting_rules(apps, schema_editor):
    AlertRule = apps.get_model("ratings", "AlertRule")
    if not AlertRule.objects.exists():
        AlertRule.objects.bulk_create(AlertRule(name=name, kind=kind, **numbers)
                                      for name, kind, numbers in STARTING_RULES)


class Migration(migrations.Migration):
    dependencies = [("ratings", "0003_work_orders_alerts_policy")]
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop),
                  migrations.RunPython(starting_rules, migrations.RunPython.noop)]
