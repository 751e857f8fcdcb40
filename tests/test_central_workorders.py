"""Work orders: every bad rating opens one, due in official working days; each step needs its
record; a re-check (复核) excludes the rating from the scores and keeps it."""

import datetime

import pytest
from django.utils import timezone

from central.ratings import stats, workorders
from central.ratings.models import Policy, Rating, WorkOrder
from terminal.core.levels import Level

from conftest import ingest_ratings, make_rating

pytestmark = [pytest.mark.central, pytest.mark.django_db]
CST = datetime.timezone(datetime.timedelta(hours=8))


def bad(node, level=Level.DISSATISFIED, **fields):
    return make_rating(level, terminal_id=node.terminal_id, reasons=("slow",), **fields)


def test_each_bad_rating_opens_one_work_order_for_its_department(hall):
    ratings = [bad(hall), bad(hall, Level.VERY_DISSATISFIED), make_rating(Level.SATISFIED, terminal_id=hall.terminal_id)]
    assert ingest_ratings(hall, *ratings) == ["accepted"] * 3
    assert ingest_ratings(hall, *ratings) == ["duplicate"] * 3  # a replay opens nothing new
    orders = WorkOrder.objects.order_by("id")
    assert [o.rating.rating_id for o in orders] == [ratings[0].id, ratings[1].id]
    assert {o.department.code for o in orders} == {"11440100MB2C000010"}  # W01's department
    today = timezone.localdate()
    assert all(o.state == "open" and o.opened_on == today for o in orders)
    assert orders[0].contact_due == workorders.deadlines(today, Policy.current())["contact_due"] > today


def test_a_bad_rating_kept_but_not_counted_opens_no_work_order_on_any_channel(hall):
    """A phone, SMS or call-back rating goes through ``direct.rate``, a terminal's through ``ingest``:
    on each, one excluded (duplicate_case, repeat_rater) opens nothing, or one address could open
    a work order per plaque rating."""
    from central.ratings import direct, plaques
    from terminal.core.channels import Channel
    first = make_rating(Level.VERY_SATISFIED, terminal_id=hall.terminal_id, case_no="C-WO-1")
    assert ingest_ratings(hall, first, bad(hall, case_no="C-WO-1")) == ["accepted", "accepted"]
    for device, channel in (("phone", Channel.QR_CODE), ("sms", Channel.SMS), ("telephone", Channel.TELEPHONE)):
        again = direct.rate(window_code="W01", level=Level.VERY_DISSATISFIED, channel=channel, device=device,
                            case_no="C-WO-1", reasons=["slow"])
        assert again.flags == ["duplicate_case"] and again.excluded
    repeat = direct.rate(window_code="W01", level=Level.DISSATISFIED, channel=Channel.QR_CODE, device="phone",
                         reasons=["slow"], flag=(plaques.REPEAT_RATER, "同一手机 24 小时内已评价过该窗口，保留但不计入"))
    assert repeat.excluded
    assert not WorkOrder.objects.exists()
    counted = direct.rate(window_code="W01", level=Level.DISSATISFIED, channel=Channel.QR_CODE, device="phone",
                          reasons=["slow"])
    assert list(WorkOrder.objects.values_list("rating__rating_id", flat=True)) == [counted.rating_id]


def reopen(rating_id: str, received: datetime.datetime) -> WorkOrder:
    """The work order as it would have opened had the rating arrived at ``received``."""
    WorkOrder.objects.filter(rating__rating_id=rating_id).delete()
    Rating.objects.filter(rating_id=rating_id).update(received_at=received)
    workorders.open_for([rating_id])
    return WorkOrder.objects.get(rating__rating_id=rating_id)


@pytest.mark.parametrize("arrived, contact_days, due", [
    # Friday before the 2026 Spring Festival: Saturday 14 Feb is a make-up workday, 15–23 off.
    (datetime.datetime(2026, 2, 13, 16, 0, tzinfo=CST), 1, (datetime.date(2026, 2, 14), datetime.date(2026, 2, 27),
                                                            datetime.date(2026, 3, 12))),
    (datetime.datetime(2026, 2, 13, 16, 0, tzinfo=CST), 3, (datetime.date(2026, 2, 25), datetime.date(2026, 2, 27),
                                                            datetime.date(2026, 3, 12))),
    # The day before National Day: 1–7 October off, Saturday 10 October a make-up workday.
    (datetime.datetime(2026, 9, 30, 9, 0, tzinfo=CST), 1, (datetime.date(2026, 10, 8), datetime.date(2026, 10, 13),
                                                           datetime.date(2026, 10, 27))),
    # Late on 30 September UTC is already 1 October in Beijing: the hall's day counts.
    (datetime.datetime(2026, 9, 30, 17, 0, tzinfo=datetime.timezone.utc), 1,
     (datetime.date(2026, 10, 8), datetime.date(2026, 10, 13), datetime.date(2026, 10, 27))),
])
def test_deadlines_follow_the_official_calendar(hall, arrived, contact_days, due):
    Policy.objects.update_or_create(pk=1, defaults={"contact_days": contact_days})
    rating = bad(hall)
    ingest_ratings(hall, rating)
    order = reopen(rating.id, arrived)
    assert order.opened_on == arrived.astimezone(CST).date()  # the hall's day, whatever the server's zone
    assert (order.contact_due, order.rectify_due, order.close_due) == due
    assert not order.provisional


def test_a_year_without_a_published_calendar_is_marked_provisional(hall):
    rating = bad(hall)
    ingest_ratings(hall, rating)
    order = reopen(rating.id, datetime.datetime(2027, 3, 5, 10, 0, tzinfo=CST))  # a Friday
    assert order.provisional and order.contact_due == datetime.date(2027, 3, 8)  # Monday, weekdays only


def test_steps_need_their_records_and_overdue_follows_the_current_step(hall):
    rating = bad(hall)
    ingest_ratings(hall, rating)
    order = reopen(rating.id, datetime.datetime(2026, 2, 13, 16, 0, tzinfo=CST))
    assert workorders.is_overdue(order, datetime.date(2026, 2, 15))  # contact was due on the 14th
    assert not workorders.is_overdue(order, datetime.date(2026, 2, 14))
    with pytest.raises(workorders.Refused, match="联系情况"):
        workorders.advance(order, "contacted")
    with pytest.raises(workorders.Refused):
        workorders.advance(order, "closed", "skipping")
    workorders.advance(order, "contacted", "电话联系评价人，已致歉")
    assert order.contacted_at and not workorders.is_overdue(order, datetime.date(2026, 2, 20))
    assert workorders.is_overdue(order, datetime.date(2026, 3, 2))  # rectification was due 27 February
    assert WorkOrder.objects.filter(workorders.overdue_q(datetime.date(2026, 3, 2)), pk=order.pk).exists()
    workorders.advance(order, "rectified", "窗口增设引导员")
    order.complex_case = True
    order.save()
    assert not workorders.is_overdue(order, datetime.date(2026, 3, 2))  # a complex case has until 12 March
    workorders.advance(order, "closed")
    assert workorders.stage_due(order) is None and not workorders.is_overdue(order, datetime.date(2030, 1, 1))


def test_recheck_excludes_the_rating_from_scores_and_keeps_it(hall, django_user_model):
    good = make_rating(Level.VERY_SATISFIED, terminal_id=hall.terminal_id)
    malicious = bad(hall, Level.VERY_DISSATISFIED, text="故意差评")
    ingest_ratings(hall, good, malicious)
    query = stats.Query(*stats.last_days(1))
    assert (stats.totals(query).total, stats.totals(query).score) == (2, 60.0)
    order = WorkOrder.objects.get(rating__rating_id=malicious.id)
    admin = django_user_model.objects.create_superuser("chief", password="x" * 12)
    with pytest.raises(workorders.Refused, match="没有待决定"):
        workorders.decide_recheck(order, True, admin)
    with pytest.raises(workorders.Refused, match="理由"):
        workorders.request_recheck(order, "  ")
    workorders.request_recheck(order, "监控显示评价人与窗口人员发生争执后连续按键")
    workorders.decide_recheck(order, True, admin)
    assert (stats.totals(query).total, stats.totals(query).score) == (1, 100.0)
    kept = Rating.objects.get(rating_id=malicious.id)
    assert kept.excluded and "复核不计入" in kept.excluded_why and kept.level == 1 and kept.text == "故意差评"
    with pytest.raises(workorders.Refused, match="已复核"):
        workorders.request_recheck(order, "again")


def test_upheld_recheck_keeps_the_rating_in_the_scores(hall, django_user_model):
    rating = bad(hall)
    ingest_ratings(hall, rating)
    order = WorkOrder.objects.get(rating__rating_id=rating.id)
    workorders.request_recheck(order, "评价人称按错")
    workorders.decide_recheck(order, False, django_user_model.objects.create_superuser("c", password="x" * 12))
    assert order.recheck == "upheld" and not Rating.objects.get(rating_id=rating.id).excluded
    assert stats.totals(stats.Query(*stats.last_days(1))).bad == 1


def test_a_closed_orders_rectification_reaches_the_public_page_once_a_hall_administrator_approves(hall):
    """整改情况公示: nothing shows until approved; only a closed order; a department manager cannot
    approve; the text is masked as every public text is; withdrawing takes it down."""
    import io

    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    rating = make_rating(Level.VERY_DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",))
    ingest_ratings(hall, rating)
    order = WorkOrder.objects.get(rating__rating_id=rating.id)
    workorders.advance(order, "contacted", "电话联系评价人，已致歉")
    workorders.advance(order, "rectified", "窗口增设引导员，高峰时段加开2号窗口；联系电话 13812345678")
    people = {}
    for name, role, dept in [("hall1", "hall_admin", None), ("mgr1", "department_manager", order.department.code)]:
        call_command("add_user", name, "--role", role, *(["--department", dept] if dept else []),
                     "--password-stdin", stdin=io.StringIO(f"pw-{name}-Qx7k\n"), stderr=io.StringIO())
        people[name] = Client()
        people[name].force_login(User.objects.get(username=name))
    publish = {"action": "publish_rectification", "_selected_action": [order.pk]}
    people["hall1"].post("/admin/ratings/workorder/", publish)
    order.refresh_from_db()
    assert order.published_at is None  # not closed yet: refused
    workorders.advance(order, "closed")
    assert "窗口增设引导员" not in Client().get("/public/").content.decode()  # closed, but not approved
    people["mgr1"].post("/admin/ratings/workorder/", publish)
    order.refresh_from_db()
    assert order.published_at is None  # a department manager may not publish
    people["hall1"].post("/admin/ratings/workorder/", publish)
    order.refresh_from_db()
    assert order.published_by.username == "hall1"
    public = Client().get("/public/").content.decode()
    assert "差评整改情况" in public and "窗口增设引导员" in public and "办事效率低" in public
    assert "13812345678" not in public and "＊＊＊＊" in public  # masked
    assert order.rectification.endswith("13812345678")  # the handler's own record is unchanged
    people["hall1"].post("/admin/ratings/workorder/", {**publish, "action": "unpublish_rectification"})
    assert "窗口增设引导员" not in Client().get("/public/").content.decode()


def test_provisional_deadlines_are_computed_again_once_the_calendar_of_their_year_is_known(hall):
    """An order opened before the library knew its year's holidays (say, in December for the next
    Spring Festival) kept its weekday estimate for ever: due on a holiday, overdue over it. The
    tick computes it again once the calendar is there; one still unknown stays as it is."""
    from django.core.management import call_command
    older, unknown = bad(hall), bad(hall)
    ingest_ratings(hall, older, unknown)
    still = reopen(unknown.id, datetime.datetime(2027, 3, 5, 10, 0, tzinfo=CST))
    # as an older library left it: 30 September 2026 counted on weekdays (1 October a Thursday)
    settled = reopen(older.id, datetime.datetime(2026, 9, 30, 9, 0, tzinfo=CST))
    WorkOrder.objects.filter(pk=settled.pk).update(provisional=True, contact_due=datetime.date(2026, 10, 1),
                                                   rectify_due=datetime.date(2026, 10, 7),
                                                   close_due=datetime.date(2026, 10, 21))
    call_command("tick", stdout=open("/dev/null", "w"))
    settled.refresh_from_db()
    assert not settled.provisional
    assert (settled.contact_due, settled.rectify_due, settled.close_due) == (
        datetime.date(2026, 10, 8), datetime.date(2026, 10, 13), datetime.date(2026, 10, 27))
    assert not workorders.is_overdue(settled, datetime.date(2026, 10, 5))  # a holiday: nothing falls due
    kept = WorkOrder.objects.get(pk=still.pk)
    assert kept.provisional and kept.contact_due == still.contact_due == datetime.date(2027, 3, 8)


def test_two_administrators_deciding_one_re_check_at_once_decide_it_once(hall, django_user_model):
    """Each decided the order as they had loaded it (复核申请 pending): the second overwrote the first,
    leaving an order "upheld" whose rating stayed excluded, and a request on a stale copy re-opened
    a decided re-check."""
    from central.ratings.models import UpwardItem
    rating = bad(hall)
    ingest_ratings(hall, rating)
    order = WorkOrder.objects.get(rating__rating_id=rating.id)
    workorders.request_recheck(order, "评价人称按错")
    first, second, handler = (WorkOrder.objects.get(pk=order.pk) for _ in range(3))
    chief = django_user_model.objects.create_superuser("chief", password="x" * 12)
    queued = UpwardItem.objects.count()
    workorders.decide_recheck(first, True, chief)
    with pytest.raises(workorders.Refused, match="没有待决定"):
        workorders.decide_recheck(second, False, chief)
    with pytest.raises(workorders.Refused, match="已复核"):
        workorders.request_recheck(handler, "再次申请")
    kept = WorkOrder.objects.get(pk=order.pk)
    assert kept.recheck == "excluded" and Rating.objects.get(rating_id=rating.id).excluded
    assert UpwardItem.objects.count() - queued <= 1  # the validity change queued once, if at all


def test_two_handlers_closing_one_order_from_their_copies_close_it_once(hall):
    """Each moved the order on as they had loaded it: both closings succeeded, and the rectification
    went upward twice as two versions of one record."""
    from central.ratings import exports
    from central.ratings.models import UpwardItem, UpwardPlatform
    UpwardPlatform.objects.create(code="PROV", name="省平台", profile=exports.shipped_text("provincial"))
    rating = bad(hall)
    ingest_ratings(hall, rating)
    order = WorkOrder.objects.get(rating__rating_id=rating.id)
    workorders.advance(order, "contacted", "电话联系，已致歉")
    workorders.advance(order, "rectified", "已调整窗口排班")
    first, second = (WorkOrder.objects.get(pk=order.pk) for _ in range(2))
    queued = UpwardItem.objects.filter(change="rectification").count()
    workorders.advance(first, "closed")
    with pytest.raises(workorders.Refused, match="已由他人处理"):
        workorders.advance(second, "closed")
    assert second.state == "closed"  # the refused copy now shows the order as stored
    assert UpwardItem.objects.filter(change="rectification").count() - queued == 1
    assert WorkOrder.objects.get(pk=order.pk).state == "closed"
