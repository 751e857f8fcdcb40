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

import chinese_calendar


def known(day: datetime.date) -> bool:
    """Whether the official calendar of ``day``'s year is in the library."""
    try:
        chinese_calendar.is_workday(day)
        return True
    except NotImplementedError:
        return False


def is_workday(day: datetime.date) -> bool:
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:  # a year whose notice the library does not have yet
        return day.weekday() < 5


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
