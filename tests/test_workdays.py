"""Work-order deadlines on the official calendar: across the 2026 Spring Festival and National
Day holidays, with their make-up workdays (2026-02-14 and 02-28 Saturdays, 09-20 a Sunday,
10-10 a Saturday), and a year the calendar does not know yet."""

from datetime import date

import pytest

from central.ratings.workdays import add_working_days, is_workday, known

pytestmark = pytest.mark.central


@pytest.mark.parametrize("start, days, due", [
    (date(2026, 2, 13), 1, date(2026, 2, 14)),  # Friday → the make-up Saturday
    (date(2026, 2, 13), 3, date(2026, 2, 25)),  # 14th, then the holiday (15th–23rd), 24th, 25th
    (date(2026, 2, 13), 5, date(2026, 2, 27)),
    (date(2026, 2, 13), 15, date(2026, 3, 12)),  # the 28th (make-up Saturday) counts
    (date(2026, 9, 30), 1, date(2026, 10, 8)),  # National Day: 1st–7th off
    (date(2026, 9, 30), 3, date(2026, 10, 10)),  # 8th, 9th, the make-up Saturday 10th
    (date(2026, 9, 30), 5, date(2026, 10, 13)),
    (date(2026, 9, 19), 1, date(2026, 9, 20)),  # a make-up Sunday
    (date(2026, 10, 3), 0, date(2026, 10, 3)),
])
def test_deadlines_count_official_working_days(start, days, due):
    assert add_working_days(start, days) == due


def test_holiday_weekdays_and_make_up_weekends():
    assert not is_workday(date(2026, 2, 16)) and not is_workday(date(2026, 10, 5))  # Monday holidays
    assert is_workday(date(2026, 2, 14)) and is_workday(date(2026, 9, 20))  # Saturday, Sunday


def test_a_year_the_calendar_does_not_know_falls_back_to_weekdays_and_says_so():
    assert known(date(2026, 12, 31)) and not known(date(2099, 1, 1))
    assert add_working_days(date(2099, 1, 2), 1) == date(2099, 1, 5)  # Friday → Monday


def test_negative_days_are_refused():
    with pytest.raises(ValueError):
        add_working_days(date(2026, 1, 5), -1)
