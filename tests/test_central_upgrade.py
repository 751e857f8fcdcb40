"""Upgrading a central server that already holds ratings: the migrations keep every rating, fill
the new columns from what was stored, and open the work orders the bad ratings should have."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from central.ratings import workorders
from central.ratings.models import Policy

pytestmark = [pytest.mark.central, pytest.mark.django_db(transaction=True)]
BEFORE = [("ratings", "0002_events_and_english_tags")]


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def test_upgrade_from_the_previous_schema_keeps_ratings_and_opens_work_orders():
    old = migrate(BEFORE)
    Hall, Department, Window = (old.get_model("ratings", m) for m in ("Hall", "Department", "Window"))
    Rating = old.get_model("ratings", "Rating")
    hall = Hall.objects.create(code="H1", name="大厅")
    department = Department.objects.create(code="11440100MB2C000010", name="部门")
    Window.objects.create(hall=hall, department=department, code="W01", name="1号窗口")
    now = timezone.now()
    for i, level in enumerate([5, 2, 1, 4]):
        Rating.objects.create(rating_id=f"r{i}", terminal_id="T1", window_code="W01", level=level, channel=4,
                              device="touchscreen", rated_at=now, rated_at_terminal=now, time_source="terminal_ntp",
                              digest="d" * 64, payload={"id": f"r{i}", "session_id": f"s{i}"})
    new = migrate(MigrationExecutor(connection).loader.graph.leaf_nodes("ratings"))
    Rating, WorkOrder = new.get_model("ratings", "Rating"), new.get_model("ratings", "WorkOrder")
    assert sorted(Rating.objects.values_list("rating_id", "session_id", "level", "excluded")) == [
        ("r0", "s0", 5, False), ("r1", "s1", 2, False), ("r2", "s2", 1, False), ("r3", "s3", 4, False)]
    assert set(Rating.objects.values_list("rated_on", flat=True)) == {timezone.localdate(now)}
    orders = WorkOrder.objects.order_by("rating__rating_id")
    assert [o.rating.rating_id for o in orders] == ["r1", "r2"]
    opened = timezone.localdate(now)
    expected = workorders.deadlines(opened, Policy())
    assert all((o.opened_on, o.contact_due, o.rectify_due, o.close_due, o.department.code) ==
               (opened, expected["contact_due"], expected["rectify_due"], expected["close_due"],
                "11440100MB2C000010") for o in orders)
    assert new.get_model("ratings", "AlertRule").objects.count() == 11  # six starting rules, three of the chain, two upward
