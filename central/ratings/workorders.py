"""Work orders for bad ratings: opened on arrival, due in working days, moved through their states.

Every counted 不满意/非常不满意 (not one kept but excluded) opens exactly one work order, in the same
transaction that stores the rating, assigned to the window's department. Its deadlines count working days on the official calendar
(``workdays``) from the day the rating arrived: contact the rater (Policy.contact_days, 1 or 3),
rectify (rectify_days, 5), close a complex case (complex_days, 15). A re-check (复核) judged
malicious or mistaken excludes the rating from every score and keeps it.

An order whose rating no longer counts (a re-check excluded it, or its case turned out to be
another window's: ``ingest.settle_reported``) waits for nothing: no step falls due, it is never
overdue, and it is not among the orders still to do. It is kept as it stood, and counts again
if its rating does.
"""

from __future__ import annotations

import datetime
import functools

from django.db import transaction
from django.utils import timezone

from terminal.core.levels import Level

from . import workdays
from .models import Policy, Rating, WorkOrder
from .sql_time import aware

#: The order a work order moves in; the stamp each step leaves.
NEXT = {"open": "contacted", "contacted": "rectified", "rectified": "closed"}
STAMPS = {"contacted": "contacted_at", "rectified": "rectified_at", "closed": "closed_at"}
BAD_LEVELS = [int(lv) for lv in Level if lv.is_bad]


class Refused(ValueError):
    """A change the rules do not allow, with the reason to show the user."""


def deadlines(opened_on: datetime.date, policy: Policy) -> dict:
    return dict(_deadlines(opened_on, policy.contact_days, policy.rectify_days, policy.complex_days))


@functools.lru_cache(maxsize=1024)
def _deadlines(opened_on: datetime.date, contact: int, rectify: int, complex_days: int) -> tuple:
    """The same for every bad rating of one day: computed once (a batch of 1,000 shares one day)."""
    return (
        ("contact_due", workdays.add_working_days(opened_on, contact)),
        ("rectify_due", workdays.add_working_days(opened_on, rectify)),
        ("close_due", workdays.add_working_days(opened_on, complex_days)),
        # Estimated on weekdays when any day up to the last deadline lies in a year not yet published.
        ("provisional", not workdays.known(workdays.add_working_days(opened_on, max(contact, rectify, complex_days)))),
    )


def settle_provisional() -> int:
    """Compute again the deadlines estimated on weekdays (``provisional``) once the library knows
    their years' official calendar: else an order opened in December stayed due on a Spring Festival
    weekday, and fell overdue over the holiday. By the current rules, as a new order's. Returns how
    many orders changed."""
    policy, changed = Policy.current(), 0
    for day in WorkOrder.objects.filter(provisional=True).values_list("opened_on", flat=True).distinct():
        found = deadlines(day, policy)
        if not found["provisional"]:
            changed += WorkOrder.objects.filter(provisional=True, opened_on=day).update(**found)
    return changed


def open_for(rating_ids: list[str], fresh: bool = False) -> int:
    """Open a work order for each counted bad rating among ``rating_ids`` that has none yet. Returns how
    many. A rating kept but excluded (duplicate_case, case_elsewhere, repeat_rater...) opens none,
    whichever channel brought it: else one address could open a work order per phone rating.
    ``fresh``: the ratings were stored in this transaction, so none can have one yet (not looked up)."""
    from .ingest import insert_rows, select_in  # the fast paths: a burst of complaints is thousands of these
    found = [row for row in select_in(Rating, "rating_id", list(rating_ids),
                                      ["id", "window_code", "received_at", "department_id", "level", "excluded"])
             if row[4] in BAD_LEVELS and not row[5]]
    opened = set() if fresh else {pk for (pk,) in select_in(WorkOrder, "rating_id", [row[0] for row in found],
                                                            ["rating_id"])}
    bad = sorted((pk, window, aware(received), department)  # arrival order
                 for pk, window, received, department, *_ in found if pk not in opened)
    if not bad:
        return 0
    policy = Policy.current()
    zone, days = timezone.get_current_timezone(), {}
    orders = []
    for pk, window_code, received_at, department in bad:  # the rating's department: the one it counts for
        opened_on = days.get(received_at) or days.setdefault(received_at, received_at.astimezone(zone).date())
        orders.append({"rating_id": pk, "window_code": window_code, "department_id": department,
                       "opened_on": opened_on, **deadlines(opened_on, policy)})
    insert_rows(WorkOrder, orders)
    return len(orders)


def stage_due(order: WorkOrder) -> datetime.date | None:
    """The deadline of the step the work order is waiting for; None once closed, or once its rating
    no longer counts."""
    if order.rating.excluded:
        return None
    if order.state == "open":
        return order.contact_due
    if order.state == "contacted":
        return order.rectify_due
    if order.state == "rectified":
        return order.close_due if order.complex_case else order.rectify_due
    return None


def is_overdue(order: WorkOrder, today: datetime.date | None = None) -> bool:
    due = stage_due(order)
    return due is not None and due < (today or timezone.localdate())


def overdue_q(today: datetime.date | None = None):
    """The same rule as ``is_overdue``, as a query filter for lists and alerts."""
    from django.db.models import Q
    today = today or timezone.localdate()
    return Q(rating__excluded=False) & (
        Q(state="open", contact_due__lt=today) | Q(state="contacted", rectify_due__lt=today)
        | Q(state="rectified", complex_case=False, rectify_due__lt=today)
        | Q(state="rectified", complex_case=True, close_due__lt=today))


def to_do_q():
    """Orders still to be worked: not closed, and their rating still counts."""
    from django.db.models import Q
    return Q(rating__excluded=False) & ~Q(state="closed")


def advance(order: WorkOrder, to_state: str, record: str = "") -> None:
    """Move a work order one step on, stamping when; each step needs its record written."""
    if NEXT.get(order.state) != to_state:
        raise Refused(f"工单只能从“{order.get_state_display()}”进入下一步，不能改为 {to_state}")
    if to_state == "contacted" and not (record or order.contact_record):
        raise Refused("请填写联系情况")
    if to_state == "rectified" and not (record or order.rectification):
        raise Refused("请填写整改情况")
    if to_state == "contacted" and record:
        order.contact_record = record
    if to_state == "rectified" and record:
        order.rectification = record
    stamp = timezone.now()
    with transaction.atomic():
        # from the state as stored, and these fields alone: two handlers moving one order from the
        # copies they loaded both closed it (its rectification queued upward twice), and a stale
        # copy must not write back a re-check decided meanwhile
        if not WorkOrder.objects.filter(pk=order.pk, state=order.state).update(
                state=to_state, contact_record=order.contact_record, rectification=order.rectification,
                **{STAMPS[to_state]: stamp}):
            order.refresh_from_db()
            raise Refused(f"工单已由他人处理，现为“{order.get_state_display()}”；请刷新后再操作")
        order.state = to_state
        setattr(order, STAMPS[to_state], stamp)
        if to_state == "closed":  # the rectification goes upward, as an update of the rating's record
            from . import upward
            upward.queue_ids([order.rating.rating_id], "rectification")


def request_recheck(order: WorkOrder, reason: str) -> None:
    """Ask for a re-check; judged on the order as stored, not as the caller loaded it (one decided
    meanwhile stays decided)."""
    if not reason.strip():
        raise Refused("申请复核须写明理由（恶意评价或误评的依据）")
    if not WorkOrder.objects.filter(pk=order.pk, recheck__in=("", "requested")).update(
            recheck="requested", recheck_reason=reason.strip()):
        order.refresh_from_db()
        raise Refused("该工单已复核")
    order.recheck, order.recheck_reason = "requested", reason.strip()


@transaction.atomic
def decide_recheck(order: WorkOrder, exclude: bool, user) -> None:
    """Exclude the rating from every score (it stays stored, marked why), or uphold it. Decided once:
    the request is taken as stored, so two administrators deciding at once cannot leave an order
    upheld whose rating the other excluded."""
    decision, at = ("excluded" if exclude else "upheld"), timezone.now()
    if not WorkOrder.objects.filter(pk=order.pk, recheck="requested").update(
            recheck=decision, recheck_by=user, recheck_at=at):
        raise Refused("没有待决定的复核申请")
    order.refresh_from_db(fields=["recheck_reason"])
    order.recheck, order.recheck_by, order.recheck_at = decision, user, at
    if exclude:
        Rating.objects.filter(pk=order.rating_id).update(
            excluded=True, excluded_why=f"复核不计入：{order.recheck_reason}"[:200])
        from . import upward
        upward.queue_ids([order.rating.rating_id], "validity")


def publish(order: WorkOrder, user, text: str | None = None) -> None:
    """Show the order's rectification on /public/ (整改情况公示): only a closed order whose rating
    still counts, as written (or as the administrator edited it), masked as any public text is."""
    from . import masking
    if order.state != "closed":
        raise Refused("工单办结后才能公示整改情况")
    if order.rating.excluded:
        raise Refused("该评价经复核不计入统计，不公示")
    public = (text if text is not None else order.rectification).strip()
    if not public:
        raise Refused("整改情况为空，无可公示内容")
    order.public_rectification = masking.anonymise(public)[:2000]
    order.published_at, order.published_by = timezone.now(), user
    order.save(update_fields=["public_rectification", "published_at", "published_by"])


def unpublish(order: WorkOrder) -> None:
    order.public_rectification, order.published_at, order.published_by = "", None, None
    order.save(update_fields=["public_rectification", "published_at", "published_by"])
