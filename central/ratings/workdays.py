"""Deadlines in working days on the official calendar: the State Council's holiday notices, with
their make-up workdays (调休), as published in chinese-calendar.

A bad rating's work order is due N working days after the day it arrived: that day is not
counted, a make-up Saturday is, a holiday weekday is not. The library knows each year only once
its notice is out (usually in November for the next year); for a year it does not know yet,
Monday to Friday count and ``known()`` says so, so a deadline can be shown as provisional and
computed again when the library is updated.
"""

from __future__ import annotations

import datetime
import functools

import chinese_calendar


@functools.lru_cache(maxsize=64)
def _year(year: int) -> tuple[bool, tuple[bool, ...]]:
    """(known, is-workday for each day of the year), asked of the library once per year: its own
    check runs min() and max() over its whole holiday table on every call, which made a burst of
    bad ratings 20 times slower to take in (bench/sync_drain.py --mix bad)."""
    first = datetime.date(year, 1, 1)
    days = [first + datetime.timedelta(days=i) for i in range((datetime.date(year + 1, 1, 1) - first).days)]
    try:
        return True, tuple(chinese_calendar.is_workday(day) for day in days)
    except NotImplementedError:  # a year whose notice the library does not have yet
        return False, tuple(day.weekday() < 5 for day in days)


def known(day: datetime.date) -> bool:
    """Whether the official calendar of ``day``'s year is in the library."""
    return _year(day.year)[0]


def is_workday(day: datetime.date) -> bool:
    return _year(day.year)[1][day.timetuple().tm_yday - 1]


def add_working_days(start: datetime.date, days: int) -> datetime.date:
    """The ``days``-th working day after ``start`` (``start`` itself not counted; 0 = ``start``)."""
    if days < 0:
        raise ValueError("a deadline is zero or more working days away")
    day, counted = start, 0
    while counted < days:
        day += datetime.timedelta(days=1)
        if is_workday(day):
            counted += 1
    return day
