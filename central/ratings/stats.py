"""Statistics of ratings: counts per level, satisfaction rate and score, per window, staff member,
department and period. The definitions, shown on every statistics page:

- 有效评价 (counted ratings): every stored rating not excluded by a re-check (复核) or superseded.
- 满意率 (satisfaction rate) = (非常满意 + 满意 + 基本满意) ÷ 有效评价数.
- 满意度得分 (score, out of 100) = average level code (5 = 非常满意 … 1 = 非常不满意) × 20,
  so 非常满意 counts 100, 满意 80, 基本满意 60, 不满意 40, 非常不满意 20.
- 差评率 (bad-rating rate) = (不满意 + 非常不满意) ÷ 有效评价数.
- Rankings order by score, then by the number of ratings (more evidence first).
- A rating counts for the department its window belonged to when it was stored (``Rating.department``;
  one stored while its window had none, for the window's department now).

One grouped query does the counting; everything else is arithmetic on its rows. Every figure is
shown rounded half up (四舍五入) from the exact counts (``rounded``), never through a float: a
template's ``widthratio`` or Python's ``round`` rounds a tie to even (85 分 to four stars, as 75),
and a whole percent showed 199 satisfied of 200 as 100%.
"""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Count
from django.db.models import F
from django.db.models.functions import TruncMonth, TruncWeek
from django.utils import timezone

from terminal.core.levels import LEVELS_BEST_FIRST, Level

from . import roles
from .models import Department, Rating, Staff, Window

DEFINITIONS = [
    ("有效评价", "全部已收到的评价，不含复核后不计入的评价和被真实评价取代的默认评价"),
    ("满意率", "（非常满意 + 满意 + 基本满意）÷ 有效评价数"),
    ("满意度得分", "各等级代码（非常满意 5 … 非常不满意 1）的平均值 × 20，满分 100"),
    ("差评率", "（不满意 + 非常不满意）÷ 有效评价数"),
    ("排名", "按满意度得分从高到低；得分相同时评价多者在前"),
    ("部门", "评价时窗口所属的部门：窗口此后调整到其他部门，已有的评价仍计入原部门"),
]
PERIODS = {"day": F, "week": TruncWeek, "month": TruncMonth}  # over rated_on, the hall's local date
DIMENSIONS = {"window": "窗口", "staff": "工作人员", "department": "部门", "hall": "全大厅"}


@dataclass
class Row:
    key: str
    label: str
    period: datetime.date | None = None
    counts: dict[int, int] = field(default_factory=dict)
    departments: dict = field(default_factory=dict)  # a window's row: department id -> its ratings' counts

    def add(self, level: int, n: int) -> None:
        self.counts[level] = self.counts.get(level, 0) + n

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def levels(self) -> list[int]:
        """Counts best first: 非常满意 … 非常不满意."""
        return [self.counts.get(int(lv), 0) for lv in LEVELS_BEST_FIRST]

    @property
    def shares(self) -> list[float]:
        total = self.total
        return [100 * n / total if total else 0.0 for n in self.levels]

    @property
    def satisfied(self) -> int:
        return sum(n for lv, n in self.counts.items() if lv >= Level.BASICALLY_SATISFIED)

    @property
    def bad(self) -> int:
        return sum(n for lv, n in self.counts.items() if Level(lv).is_bad)

    @property
    def satisfaction_rate(self) -> float | None:
        return self.satisfied / self.total if self.total else None

    @property
    def bad_rate(self) -> float | None:
        return self.bad / self.total if self.total else None

    @property
    def score(self) -> float | None:
        return 20 * self.points / self.total if self.total else None

    @property
    def points(self) -> int:
        """The sum of the level codes: score = 20 × points ÷ total."""
        return sum(lv * n for lv, n in self.counts.items())

    @property
    def stars(self) -> float:
        """Score as stars out of 5, to the half star, half up (the public page): one half star per
        10 points, so 85 分 is 4.5 stars and 75 分 is 4."""
        return int(rounded(2 * self.points, self.total, 0)) / 2 if self.total else 0.0

    @property
    def satisfaction_text(self) -> str:
        return percent(self.satisfied, self.total)

    @property
    def bad_text(self) -> str:
        return percent(self.bad, self.total)

    @property
    def score_text(self) -> str:
        return rounded(20 * self.points, self.total, 1) if self.total else "—"

    @property
    def star_text(self) -> str:
        """Whole stars drawn (★ full, ☆ empty); the number beside them carries the half."""
        full = int(self.stars)
        return "★" * full + "☆" * (5 - full)


def rounded(numerator: int, denominator: int, places: int) -> str:
    """numerator ÷ denominator to ``places`` decimals, half up, exactly (integers, no float)."""
    scale = 10 ** places
    whole, rest = divmod(numerator * scale, denominator)
    whole += 2 * rest >= denominator
    return f"{whole // scale}.{whole % scale:0{places}d}" if places else str(whole)


def percent(part: int, total: int) -> str:
    """A rate as shown (满意率, 差评率): one decimal, half up; "—" with nothing to count. A rate
    that is neither none nor all never shows as 0.0% or 100.0%: a window with one 差评 among
    thousands shows 0.1%, not a clean record."""
    if not total:
        return "—"
    tenths = int(rounded(1000 * part, total, 0))
    if 0 < part < total:
        tenths = min(max(tenths, 1), 999)
    return f"{tenths // 10}.{tenths % 10}%"


@dataclass
class Query:
    start: datetime.date
    end: datetime.date  # inclusive
    by: str = "window"
    period: str | None = None  # day | week | month | None for the whole range
    departments: list[int] | None = None  # None: the whole hall; else only ratings counted for these (a manager's)

    def __post_init__(self):
        if self.by not in DIMENSIONS:
            raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}")
        if self.period is not None and self.period not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(PERIODS)}")
        if self.end < self.start:
            raise ValueError("the end date is before the start date")

    def ratings(self):
        found = Rating.objects.filter(rated_on__gte=self.start, rated_on__lte=self.end, excluded=False)
        if self.departments is not None:
            found = found.filter(roles.ratings_of(self.departments))
        return found


def last_days(days: int = 30, today: datetime.date | None = None) -> tuple[datetime.date, datetime.date]:
    today = today or timezone.localdate()
    return today - datetime.timedelta(days=days - 1), today


def table(query: Query) -> list[Row]:
    """Rows for the query, ranked (or in period order when grouped by period)."""
    group = {"window": ["window_code", "department"], "staff": ["staff_no", "window_code"],
             "department": ["department", "window_code"], "hall": []}[query.by]
    ratings = query.ratings()
    if query.period:
        ratings = ratings.annotate(p=PERIODS[query.period]("rated_on"))
        group = group + ["p"]
    found = ratings.values(*group, "level").annotate(n=Count("id")).order_by()
    windows = dict(Window.objects.values_list("code", "name"))
    departments = {d.pk: d for d in Department.objects.all()}
    staff = dict(Staff.objects.values_list("staff_no", "name"))
    now_in = dict(Window.objects.values_list("code", "department_id"))
    rows: dict[tuple, Row] = {}
    for item in found:
        if "department" in item and item["department"] is None:  # stored while its window had none
            item["department"] = now_in.get(item["window_code"])
        period = item.get("p")
        period = period.date() if isinstance(period, datetime.datetime) else period
        key, label = _key(query.by, item, windows, departments, staff)
        row = rows.get((key, period))
        if row is None:
            row = rows[(key, period)] = Row(key, label, period)
        row.add(item["level"], item["n"])
        if query.by == "window":
            row.departments.setdefault(item["department"], Counter())[item["level"]] += item["n"]
    if query.period:
        return sorted(rows.values(), key=lambda r: (r.key, r.period))
    return ranked(list(rows.values()))


def fold(window_rows: list[Row], by: str) -> list[Row]:
    """Per-window rows (of one period) added up by department (the one each rating counts for) or
    for the whole hall, ranked: the dashboard's three tables from one query."""
    departments = {d.pk: d for d in Department.objects.all()}
    rows: dict[str, Row] = {}
    for row in window_rows:
        for department, counts in row.departments.items():
            key, label = _key(by, {"department": department}, {}, departments, {})
            into = rows.setdefault(key, Row(key, label, row.period))
            for level, n in counts.items():
                into.add(level, n)
    return ranked(list(rows.values()))


def ranked(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (-(r.score or 0), -r.total, r.key))


def _key(by: str, item: dict, windows: dict, departments: dict, staff: dict) -> tuple[str, str]:
    if by == "hall":
        return "all", "全大厅"
    if by == "window":
        return item["window_code"], f"{windows.get(item['window_code'], '未登记窗口')}（{item['window_code']}）"
    if by == "staff":
        no = item["staff_no"] or ""
        return no or "—", f"{staff.get(no, '未登录/未登记')}（{no or '无工号'}）"
    department = departments.get(item["department"])
    return (department.code, department.name) if department else ("—", "未归属部门")


def totals(query: Query) -> Row:
    rows = table(Query(query.start, query.end, "hall", None, query.departments))
    return rows[0] if rows else Row("all", "全大厅")


def department_names() -> dict[str, str]:
    return dict(Department.objects.values_list("code", "name"))
