"""Telephone call-backs (电话回访): every bad rating with a known number, and a quarterly random
sample of each window's cases (Huanggang calls back a sample of each window's register every
quarter; Dezhou calls back every named bad rating).

``open_for_bad_ratings`` (run by ``tick``) opens a task for each bad rating whose case has a mobile
number. ``sample(quarter, seed)`` draws ``Policy.callback_sample_per_window`` cases per window
from the cases completed in that quarter with a number: reproducible from its seed (the same seed
and register draw the same cases), and a case is never sampled twice. ``record`` keeps what the
call found; a satisfaction given on the phone becomes a rating on ``Policy.callback_channel``,
through the same case rules (a case already rated keeps its rating; the call's is kept, not counted).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from terminal.core.channels import Channel
from terminal.core.levels import Level

from . import direct
from .stats import percent
from .models import CallbackTask, Case, Policy, Rating

BAD = (int(Level.DISSATISFIED), int(Level.VERY_DISSATISFIED))


def quarter_of(day: date) -> str:
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def quarter_bounds(quarter: str) -> tuple[datetime, datetime]:
    """The quarter's first and last instants, hall time (``2026Q4``)."""
    year, number = int(quarter[:4]), int(quarter[5])
    if quarter[4] != "Q" or not 1 <= number <= 4 or len(quarter) != 6:
        raise ValueError(f"{quarter!r} is not a quarter like 2026Q4")
    zone = timezone.get_current_timezone()
    start = datetime.combine(date(year, 3 * number - 2, 1), time.min, tzinfo=zone)
    end_month = date(year + (number == 4), (3 * number) % 12 + 1, 1)
    return start, datetime.combine(end_month, time.min, tzinfo=zone) - timedelta(microseconds=1)


def open_for_bad_ratings() -> int:
    """A task for each counted bad rating of a case with a mobile number that has none yet."""
    waiting = (Rating.objects.filter(level__in=BAD, excluded=False).exclude(case_no="")
               .filter(callbacks__isnull=True).exclude(device="system"))
    known = {c.case_no: c for c in Case.objects.filter(case_no__in=waiting.values("case_no")).exclude(mobile_token="")}
    made = 0
    for rating in waiting.filter(case_no__in=list(known)).iterator(chunk_size=500):
        try:
            with transaction.atomic():
                CallbackTask.objects.create(case=known[rating.case_no], reason="bad_rating", rating=rating,
                                            quarter=quarter_of(timezone.localtime(rating.rated_at).date()),
                                            window_code=rating.window_code)
            made += 1
        except IntegrityError:  # opened by another node's tick just now
            pass
    return made


def sample(quarter: str, seed: str, per_window: int | None = None) -> list[CallbackTask]:
    """Draw the quarter's sample: per window, ``per_window`` of its completed cases with a number, in
    an order fixed by the seed, skipping cases sampled before. The same seed draws the same cases."""
    per_window = Policy.current().callback_sample_per_window if per_window is None else per_window
    start, end = quarter_bounds(quarter)
    register = (Case.objects.filter(status="completed", completed_at__range=(start, end)).exclude(mobile_token="")
                .select_related("window").order_by("case_no"))
    by_window: dict[str, list[Case]] = {}
    for case in register:
        by_window.setdefault(case.window.code, []).append(case)
    taken = set(CallbackTask.objects.filter(reason="sample").values_list("case_id", flat=True))
    drawn = []
    for window_code in sorted(by_window):
        pool = by_window[window_code]
        random.Random(f"{seed}/{quarter}/{window_code}").shuffle(pool)  # the seed alone fixes the order
        chosen = [c for c in pool if c.pk not in taken][:per_window]
        for case in chosen:
            try:
                with transaction.atomic():
                    drawn.append(CallbackTask.objects.create(case=case, reason="sample", quarter=quarter, seed=seed,
                                                             window_code=window_code))
            except IntegrityError:  # sampled by a run at the same moment
                pass
    return drawn


class Refused(ValueError):
    """A record the rules do not allow, with the reason to show the user."""


def check_level_kept(task: CallbackTask, reached: bool, level: Level | None) -> None:
    """Once a call's level became a rating, it is fixed: recording the task again may add notes, not
    change the level (the call-back's figures and the stored rating would disagree). Refused says why."""
    if not task.rating_id_given:
        return
    given = Rating.objects.filter(rating_id=task.rating_id_given).values_list("level", flat=True).first()
    if (int(level) if reached and level is not None else None) != given:
        shown = Level(given).zh if given is not None else "—"
        raise Refused(f"本次回访已形成评价 {task.rating_id_given}（{shown}），回访结果和评价等级不能再改；"
                      "如评价有误，请对该评价申请复核。")


def record(task: CallbackTask, reached: bool, level: Level | None, notes: str, user) -> CallbackTask:
    """What the call found. A level given on the phone becomes a rating of the case on the
    configured call-back channel (once per task, and then fixed: ``check_level_kept``); a case rated
    before keeps its counted rating and the call's is kept beside it, flagged ``duplicate_case``:
    the call-back's own figures are ``figures``, never a second vote.

    The task is locked and read again first: two callers saving one task at once (each page loaded
    before either saved) each made a rating of the call, the task naming only the last."""
    with transaction.atomic():
        task.rating_id_given = (CallbackTask.objects.select_for_update().filter(pk=task.pk)
                                .values_list("rating_id_given", flat=True).get())
        return _record(task, reached, level, notes, user)


def _record(task: CallbackTask, reached: bool, level: Level | None, notes: str, user) -> CallbackTask:
    check_level_kept(task, reached, level)
    task.state = "reached" if reached else "unreached"
    task.notes, task.called_at, task.called_by = notes, timezone.now(), user
    task.level = int(level) if reached and level is not None else None
    if task.level is not None and not task.rating_id_given:
        case = task.case
        rating = direct.rate(window_code=case.window.code, level=Level(task.level),
                             channel=_channel(), device="telephone", case_no=case.case_no,
                             staff_no=case.staff_no, item_code=case.item_code, facts={"callback": task.pk})
        task.rating_id_given = rating.rating_id
    task.save()
    return task


def _channel() -> int:
    return Policy.current().callback_channel or int(Channel.TELEPHONE)


@dataclass
class Figures:
    """A quarter's call-backs: Huanggang's "近500位…满意率为96.2%"."""
    quarter: str
    tasks: int
    reached: int
    rated: int
    satisfied: int

    @property
    def satisfaction_rate(self) -> float | None:
        return self.satisfied / self.rated if self.rated else None

    @property
    def rate_text(self) -> str:
        return percent(self.satisfied, self.rated)


def figures(quarters: int = 4, today: date | None = None, departments: list[int] | None = None) -> list[Figures]:
    """The last ``quarters`` quarters' figures, newest first: tasks, reached, given a level, and
    satisfied (非常满意, 满意 or 基本满意) among those, as the statistics page shows them; only
    the call-backs of ``departments``' cases when given (a department manager's, ``roles.department_ids``):
    a task stays with its case's department, as its page does, wherever its window moves later."""
    today = today or timezone.localdate()
    wanted, day = [], today
    for _ in range(quarters):
        wanted.append(quarter_of(day))
        day = quarter_bounds(wanted[-1])[0].date() - timedelta(days=1)
    tasks = CallbackTask.objects.filter(quarter__in=wanted)
    if departments is not None:
        tasks = tasks.filter(case__department__in=departments)
    rows = {r["quarter"]: r for r in tasks.values("quarter").annotate(
        tasks=Count("id"), reached=Count("id", filter=Q(state="reached")),
        rated=Count("id", filter=Q(level__isnull=False)), satisfied=Count("id", filter=Q(level__gte=3)))}
    return [Figures(q, *(rows.get(q, {}).get(k, 0) for k in ("tasks", "reached", "rated", "satisfied"))) for q in wanted]
