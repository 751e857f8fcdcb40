"""Export upward, in two conventions. Each convention is one table of fields (name, meaning, value),
and that table drives the JSON, the CSV and the documentation (docs/exports.md, checked by a test).

- ``provincial``: the provincial 好差评 interface convention: satisfaction 5 = 非常满意 … 1 =
  非常不满意, channel codes 1–7 (``pf``), times as ``yyyy-MM-dd HH:mm:ss`` in Beijing time.
- ``gbt39046``: GB/T 39046-2020 data items, by their Chinese names: 评价等级 on code list A.8
  (1 = 非常满意 … 5 = 非常不满意), times in GB/T 7408 extended form (``YYYY-MM-DDThh:mm:ss+08:00``).

Both carry every stored rating in the range, including those excluded by a re-check (复核), with a
field saying whether it counts: upward reporting must see the record, not a filtered view.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Callable, Iterator

from django.utils import timezone

from terminal.core.levels import Level

from .models import Rating, ReasonTag, Window


@dataclass(frozen=True)
class Field:
    name: str
    meaning: str
    value: Callable  # (rating, lookups) -> str | int


def _department(r: Rating, look: dict) -> str:
    window = look["windows"].get(r.window_code)
    return window.department.code if window and window.department else ""


def _reasons(r: Rating, look: dict) -> str:
    return ",".join(look["tags"].get(code, code) for code in r.reasons)


def _local(r: Rating):
    return timezone.localtime(r.rated_at)


def _rating_no(r: Rating) -> int:
    no = (r.payload or {}).get("rating_no", 1)
    return no if no in (1, 2) else 1


def _anonymous(r: Rating) -> int:
    return 0 if (r.payload or {}).get("anonymous") is False else 1


CONVENTIONS: dict[str, tuple[str, list[Field]]] = {
    "provincial": ("省级好差评接口约定（满意度 5 = 非常满意）", [
        Field("evaluateId", "评价编号（终端生成，全局唯一）", lambda r, l: r.rating_id),
        Field("projectNo", "办件编号", lambda r, l: r.case_no),
        Field("taskCode", "事项编码", lambda r, l: r.item_code),
        Field("deptCode", "实施部门统一社会信用代码（18 位）", _department),
        Field("windowCode", "窗口编号", lambda r, l: r.window_code),
        Field("staffNo", "工作人员工号", lambda r, l: r.staff_no),
        Field("satisfaction", "评价等级：5 非常满意、4 满意、3 基本满意、2 不满意、1 非常不满意", lambda r, l: r.level),
        Field("pf", "评价渠道：1 PC 端、2 移动端、3 二维码、4 政务大厅平板电脑、5 政务大厅其他终端、6 短信、7 系统默认评价",
              lambda r, l: r.channel),
        Field("evaluateTime", "评价时间，yyyy-MM-dd HH:mm:ss（北京时间）",
              lambda r, l: _local(r).strftime("%Y-%m-%d %H:%M:%S")),
        Field("evaluateNumber", "第几次评价（1 或 2）", lambda r, l: _rating_no(r)),
        Field("evalDetail", "差评原因标签，逗号分隔", _reasons),
        Field("evalContent", "文字评价", lambda r, l: r.text),
        Field("anonymous", "匿名评价：1 是、0 否", lambda r, l: _anonymous(r)),
        Field("isValid", "是否计入统计：1 计入、0 复核不计入或被真实评价取代", lambda r, l: 0 if r.excluded else 1),
    ]),
    "gbt39046": ("GB/T 39046-2020 数据项（评价等级按代码表 A.8：1 = 非常满意）", [
        Field("评价编号", "评价的唯一标识", lambda r, l: r.rating_id),
        Field("办件编号", "办件的唯一编号", lambda r, l: r.case_no),
        Field("事项编码", "政务服务事项编码", lambda r, l: r.item_code),
        Field("实施机构统一社会信用代码", "窗口所属部门的统一社会信用代码", _department),
        Field("窗口编号", "政务服务大厅窗口编号", lambda r, l: r.window_code),
        Field("工作人员工号", "提供服务的工作人员", lambda r, l: r.staff_no),
        Field("评价等级", "代码表 A.8：1 非常满意、2 满意、3 基本满意、4 不满意、5 非常不满意",
              lambda r, l: Level(r.level).to_gbt()),
        Field("评价渠道", "渠道代码 1–7，同省级接口", lambda r, l: r.channel),
        Field("评价时间", "GB/T 7408 扩展格式 YYYY-MM-DDThh:mm:ss+08:00", lambda r, l: _local(r).isoformat(timespec="seconds")),
        Field("评价次数", "第几次评价（1 或 2）", lambda r, l: _rating_no(r)),
        Field("差评原因", "差评原因标签，逗号分隔", _reasons),
        Field("评价内容", "文字评价", lambda r, l: r.text),
        Field("是否匿名", "1 是、0 否", lambda r, l: _anonymous(r)),
        Field("是否有效", "1 计入统计、0 复核不计入或被真实评价取代", lambda r, l: 0 if r.excluded else 1),
    ]),
}


def lookups() -> dict:
    return {"windows": {w.code: w for w in Window.objects.select_related("department")},
            "tags": dict(ReasonTag.objects.values_list("code", "label"))}


def records(convention: str, ratings) -> Iterator[dict]:
    title, fields = CONVENTIONS[convention]
    look = lookups()
    for r in ratings.order_by("rated_at", "id").iterator(chunk_size=2000):
        yield {f.name: f.value(r, look) for f in fields}


def spreadsheet_safe(value):
    """A CSV cell a spreadsheet will not run: text starting with = + - @ (or a tab or return) gets a
    leading apostrophe. A rater's free text is untrusted input that auditors open in Excel."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_lines(convention: str, ratings) -> Iterator[str]:
    """CSV with a header row, UTF-8 with a byte-order mark so spreadsheet programs read the Chinese."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([f.name for f in CONVENTIONS[convention][1]])
    yield "\ufeff" + buffer.getvalue()
    for record in records(convention, ratings):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([spreadsheet_safe(v) for v in record.values()])
        yield buffer.getvalue()


def markdown() -> str:
    """The field mapping, as docs/exports.md has it."""
    out = ["# Export upward: field mapping", "",
           "Generated from `central/ratings/exports.py` (`rating-central export_docs`); a test checks it is current.",
           "Both conventions: `GET /exports/<convention>.json` or `.csv` with `?from=YYYY-MM-DD&to=YYYY-MM-DD`",
           "(login as hall administrator or auditor; a department manager gets their department only).", ""]
    for name, (title, fields) in CONVENTIONS.items():
        out += [f"## `{name}` — {title}", "", "| field | meaning |", "| --- | --- |"]
        out += [f"| `{f.name}` | {f.meaning} |" for f in fields]
        out.append("")
    return "\n".join(out)
