"""Server-rendered pages for people: the dashboard, statistics, alerts and exports (login), and the
public page (open to all). Every page for staff is limited to the user's department when they are a
department manager (``roles``); the terminal API lives in ``api.py``."""

from __future__ import annotations

import datetime
import json

from django.conf import settings
from django.contrib.admin.forms import AdminPasswordChangeForm
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.views import PasswordChangeView
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from terminal.core.levels import LEVELS_BEST_FIRST

from . import callbacks, chains, exports, masking, roles, stats, upward, workorders
from .models import Alert, Rating, ReasonTag, UpwardPlatform, Window, WorkOrder

LEVEL_NAMES = [lv.zh for lv in LEVELS_BEST_FIRST]
staff_page = [login_required, permission_required("ratings.view_rating", raise_exception=True)]


def _staff(view):
    for wrap in reversed(staff_page):
        view = wrap(view)
    return view


def _dates(request, days: int = 30) -> tuple[datetime.date, datetime.date]:
    start, end = stats.last_days(days)
    try:
        if request.GET.get("from"):
            start = datetime.date.fromisoformat(request.GET["from"])
        if request.GET.get("to"):
            end = datetime.date.fromisoformat(request.GET["to"])
    except ValueError:
        raise BadQuery("日期格式应为 YYYY-MM-DD") from None
    if end < start:
        raise BadQuery("结束日期早于开始日期")
    if (end - start).days > 3660:
        raise BadQuery("时间范围不能超过十年")
    return start, end


class BadQuery(ValueError):
    pass


def _bad_query(view):
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except (BadQuery, ValueError) as exc:
            return HttpResponseBadRequest(f"参数有误：{exc}", content_type="text/plain; charset=utf-8")
    wrapped.__name__ = view.__name__
    return wrapped


def trend_points(rows: list[stats.Row], width: int = 600, height: int = 120) -> dict:
    """An SVG polyline of the daily score (0–100) and its axis labels: a chart with no script."""
    if not rows:
        return {"points": "", "labels": [], "width": width, "height": height}
    step = width / max(1, len(rows) - 1)
    points = " ".join(f"{i * step:.1f},{height - (r.score or 0) / 100 * height:.1f}" for i, r in enumerate(rows))
    every = max(1, len(rows) // 6)
    shown = [i for i in range(len(rows)) if i % every == 0]
    if len(rows) - 1 - shown[-1] >= every / 2:
        shown.append(len(rows) - 1)  # the last day too, unless it would overlap its neighbour
    labels = [{"x": f"{i * step:.1f}", "text": f"{rows[i].period:%m-%d}"} for i in shown]
    return {"points": points, "labels": labels, "width": width, "height": height}


@_staff
@_bad_query
def dashboard(request):
    """At a glance: totals, level distribution, the daily score, window and department rankings,
    open work orders and alerts."""
    start, end = _dates(request)
    departments = roles.department_ids(request.user)
    per_window = stats.table(stats.Query(start, end, "window", None, departments))
    overall = (stats.fold(per_window, "hall") or [stats.Row("all", "全大厅")])[0]
    daily = stats.table(stats.Query(start, end, "hall", "day", departments))
    orders = roles.scope(WorkOrder.objects.all(), request.user, "department")
    return render(request, "ratings/dashboard.html", {
        "start": start, "end": end, "level_names": LEVEL_NAMES, "overall": overall,
        "windows": per_window,
        "departments": stats.fold(per_window, "department"),
        "trend": trend_points(daily),
        "definitions": stats.DEFINITIONS,
        "open_orders": orders.filter(workorders.to_do_q()).count(),
        "overdue_orders": orders.filter(workorders.overdue_q()).count(),
        "alerts": roles.scope_alerts(Alert.objects.filter(cleared_at__isnull=True), request.user)
                       .select_related("rule")[:10],
        "recent": roles.scope_ratings(Rating.objects.all(), request.user)
                                .order_by("-pk")[:10],  # ids grow as ratings arrive: no sort of the table
    })


@_staff
@_bad_query
def statistics(request):
    """One table: by window, staff or department, over the whole range or per day, week or month;
    ``?format=csv`` downloads it."""
    start, end = _dates(request)
    by = request.GET.get("by", "window")
    period = request.GET.get("period") or None
    query = stats.Query(start, end, by, period, roles.department_ids(request.user))
    rows = stats.table(query)
    if request.GET.get("format") == "csv":
        return _csv_response(rows, query)
    return render(request, "ratings/statistics.html", {
        "start": start, "end": end, "by": by, "period": period or "", "rows": rows, "level_names": LEVEL_NAMES,
        "dimensions": stats.DIMENSIONS, "periods": {"": "整个时段", "day": "按日", "week": "按周", "month": "按月"},
        "definitions": stats.DEFINITIONS,
        "callback_figures": callbacks.figures(departments=query.departments)})


def _csv_response(rows: list[stats.Row], query: stats.Query) -> HttpResponse:
    import csv
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="ratings-{query.by}-{query.start}-{query.end}.csv"'
    response.write("\ufeff")
    writer = csv.writer(response)
    writer.writerow(["排名" if not query.period else "周期", stats.DIMENSIONS[query.by], "编码", *LEVEL_NAMES,
                     "有效评价", "满意率", "满意度得分", "差评率"])
    for i, r in enumerate(rows, 1):
        writer.writerow([r.period.isoformat() if r.period else i, exports.spreadsheet_safe(r.label),
                         exports.spreadsheet_safe(r.key), *r.levels, r.total,
                         stats.rounded(r.satisfied, r.total, 4), stats.rounded(20 * r.points, r.total, 2),
                         stats.rounded(r.bad, r.total, 4)])
    return response


@login_required
@permission_required("ratings.view_terminal", raise_exception=True)
def terminals(request):
    """Which terminal runs what, as its last heartbeat said: software, schema, box firmware, health."""
    from collections import Counter
    from .models import Chain, Terminal
    nodes = list(roles.scope(Terminal.objects.select_related("window"), request.user, "window__department"))
    chains_of: dict[str, list] = {}
    for chain in Chain.objects.filter(terminal_id__in=[n.terminal_id for n in nodes]).order_by("first_seen"):
        chains_of.setdefault(chain.terminal_id, []).append(chain)
    rows = []
    for node in nodes:
        beat = node.heartbeat or {}
        versions = beat.get("versions") if isinstance(beat.get("versions"), dict) else {}
        devices = beat.get("devices") if isinstance(beat.get("devices"), list) else []  # stored as the terminal sent it
        box = next((d for d in devices if isinstance(d, dict) and d.get("device") == "button_box"), None)
        rows.append({"terminal": node, "software": node.version or "—", "schema": _reported(versions.get("schema")),
                     "os": _reported(versions.get("os")), "python": _reported(versions.get("python")),
                     "firmware": _reported((box or {}).get("firmware")),
                     "box": "" if box is None else ("已连接" if box.get("connected") else "未连接"),
                     "online": bool(node.last_seen and (timezone.now() - node.last_seen).total_seconds() < 180),
                     "chain": terminal_chain_state(chains_of.get(node.terminal_id, []))})
    return render(request, "ratings/terminals.html", {
        "rows": rows, "software": Counter(r["software"] for r in rows).most_common(),
        "firmware": Counter(r["firmware"] for r in rows).most_common()})


def _reported(value) -> str:
    """A value a heartbeat reported, as text to show and count ("—" for none): a terminal may send
    any JSON there, and a list or an object could not be counted (unhashable), a 500 for the page."""
    if value is None or value == "" or isinstance(value, (list, dict)) and not value:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)[:64]


def terminal_chain_state(chains_of_terminal: list) -> tuple[str, str, bool]:
    """(word, detail, healthy) for one terminal: its latest chain, with the problems of older ones."""
    if not chains_of_terminal:
        return (*chains.state(None), True)
    word, detail = chains.state(chains_of_terminal[-1])
    older = [f"旧链 {c.epoch[:8]}：{chains.state(c)[1]}" for c in chains_of_terminal[:-1]
             if c.missing or c.forks or c.breaks]
    worst = next((chains.state(c)[0] for c in chains_of_terminal if c.forks or c.breaks), None)
    word = worst or ("缺号" if older and word == "完整" else word)
    return word, "；".join([detail, *older]), word == "完整"


@login_required
@permission_required("ratings.view_alert", raise_exception=True)
def alerts_page(request):
    mine = roles.scope_alerts(Alert.objects.select_related("rule"), request.user)
    return render(request, "ratings/alerts.html", {
        "open": mine.filter(cleared_at__isnull=True), "recent": mine.filter(cleared_at__isnull=False)[:50]})


@_staff
@_bad_query
def export(request, convention: str, fmt: str):
    profiles = exports.shipped()
    if convention not in profiles or fmt not in ("json", "csv"):
        return HttpResponseBadRequest(f"未知的导出格式；可用：{', '.join(profiles)}，扩展名 .json 或 .csv",
                                      content_type="text/plain; charset=utf-8")
    start, end = _dates(request)
    ratings = _all_in_range(start, end, request.user)
    unmapped = upward.unmapped(profiles[convention])
    if unmapped:  # never guessed: the export names what the profile cannot code
        return HttpResponse("导出规范缺少代码映射，未导出：\n" + "\n".join(unmapped), status=409,
                            content_type="text/plain; charset=utf-8")
    name = f"ratings-{convention}-{start}-{end}"
    if fmt == "csv":
        response = StreamingHttpResponse(exports.csv_lines(convention, ratings), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
    head = {"convention": convention, "title": profiles[convention].title, "from": start.isoformat(),
            "to": end.isoformat()}
    return StreamingHttpResponse(exports.json_parts(convention, ratings, head),
                                 content_type="application/json")


@login_required
@permission_required("ratings.view_upwarditem", raise_exception=True)
def upward_page(request):
    """Each platform: what its outbox holds, why a push does not start, and the last days' reconciliation."""
    from .export_profile import ProfileError
    platforms = []
    for row in UpwardPlatform.objects.all():
        try:
            profile = upward.profile_of(row)
            problems, title = upward.unmapped(profile), profile.title
            if row.code not in settings.UPWARD:
                problems.append(f"环境中没有 RATING_CENTRAL_UPWARD_{row.code}_URL 等配置")
        except ProfileError as exc:
            problems, title = [str(exc)], "—"
        days = [{"row": d, "ours_total": sum(d.ours.values()), "acked_total": sum(d.acknowledged.values()),
                 "theirs_total": None if d.theirs is None else sum(d.theirs.values())}
                for d in row.days.order_by("-day")[:14]]
        platforms.append({"row": row, "title": title, "problems": problems, "summary": upward.summary(row),
                          "days": days})
    return render(request, "ratings/upward.html", {"platforms": platforms})


def _all_in_range(start, end, user):
    """Every stored rating in the range, excluded ones too (exports carry the record, flagged). By
    ``rated_on``, the hall's date of each, as statistics count them: days at the calendar's edge
    (0001-01-01, 9999-12-31) made into times a day either side overflowed, and the export was a 500."""
    return roles.scope_ratings(Rating.objects.filter(rated_on__gte=start, rated_on__lte=end), user)


#: the public page's words; Simplified Chinese first, English on ``?lang=en``
PUBLIC_WORDS = {
    "zh": {"title": "评价公示", "heading": "政务服务评价公示", "span": "近 90 天：{start} 至 {end}",
           "note": "星级按满意度得分折算（满分 100 分 = 五星，每 10 分半颗星）。评价人信息不公开。",
           "departments": "部门", "windows": "窗口", "department": "部门", "window": "窗口", "stars": "星级",
           "star": "星", "count": "评价数", "satisfied": "满意率", "no_ratings": "暂无评价。",
           "comments": "最近评价内容", "date": "日期", "rating": "评价", "comment": "内容", "no_comments": "暂无文字评价。",
           "rectified": "差评整改情况", "closed_on": "办结日期", "reasons": "原因", "rectification": "整改情况",
           "no_rectified": "暂无公示的整改情况。", "brand": "政务服务好差评", "login": "工作人员登录",
           "other": "English", "separator": "、", "window_label": "{name}（{code}）", "unknown_window": "未登记窗口",
           "no_department": "未归属部门"},
    "en": {"title": "Ratings in public", "heading": "Ratings of this hall's services", "span": "last 90 days: {start} to {end}",
           "note": "Stars follow the satisfaction score (100 points = five stars, half a star per 10 points). "
                   "Nothing about the people who rated is shown.",
           "departments": "Departments", "windows": "Windows", "department": "Department", "window": "Window",
           "stars": "Stars", "star": "stars", "count": "Ratings", "satisfied": "Satisfied", "no_ratings": "No ratings yet.",
           "comments": "Recent comments", "date": "Date", "rating": "Rating", "comment": "Comment",
           "no_comments": "No comments yet.", "rectified": "Complaints put right", "closed_on": "Closed on",
           "reasons": "Reasons", "rectification": "What was done", "no_rectified": "Nothing published yet.",
           "brand": "Government service ratings", "login": "Staff login", "other": "中文", "separator": ", ",
           "window_label": "{name} ({code})", "unknown_window": "Unregistered window", "no_department": "No department"},
}


def public(request):
    """Open to everyone: each department's and window's star level and counts over the last 90
    days, and the comments of those days that a hall administrator approved, masked (``masking``).
    In Simplified Chinese, or English on ``?lang=en``; names and comments stay as written."""
    from terminal.core.levels import Level

    from .mobile import language_of
    language = language_of(request)
    words = PUBLIC_WORDS[language]

    def level_name(level: int) -> str:
        return Level(level).en if language == "en" else Level(level).zh
    start, end = stats.last_days(90)
    windows = stats.table(stats.Query(start, end, "window"))
    departments = stats.fold(windows, "department")
    names = dict(Window.objects.values_list("code", "name"))
    for row in windows:  # the page's own words around the names: stats labels rows in Chinese
        row.label = words["window_label"].format(name=names.get(row.key) or words["unknown_window"], code=row.key)
    for row in departments:
        if row.key == "—":
            row.label = words["no_department"]
    since = timezone.make_aware(datetime.datetime.combine(start, datetime.time.min))
    approved = (Rating.objects.filter(excluded=False, comment_state="approved", received_at__gte=since)
                .order_by("-received_at")[:20])  # the server's own clock orders them, not a terminal's
    comments = [{"window": names.get(r.window_code, r.window_code), "level": level_name(r.level),
                 "text": masking.anonymise(r.comment_public or r.text), "date": timezone.localtime(r.received_at).date()}
                for r in approved]
    labels = {code: (en or zh) if language == "en" else zh
              for code, zh, en in ReasonTag.objects.values_list("code", "label", "label_en")}
    rectified = [{"date": timezone.localtime(o.closed_at).date(), "window": names.get(o.window_code, o.window_code),
                  "level": level_name(o.rating.level), "text": o.public_rectification,
                  "reasons": words["separator"].join(labels.get(c, c) for c in o.rating.reasons)}
                 for o in WorkOrder.objects.filter(published_at__isnull=False, closed_at__gte=since,
                                                   rating__excluded=False)
                 .select_related("rating").order_by("-closed_at")[:20]]
    return render(request, "ratings/public.html", {
        "start": start, "end": end, "windows": windows, "departments": departments, "comments": comments,
        "rectified": rectified, "words": words, "language": language, "html_lang": "en" if language == "en" else "zh-CN",
        "other_lang": "zh" if language == "en" else "en",
        "span": words["span"].format(start=start.isoformat(), end=end.isoformat()),
        "level_names": [level_name(int(lv)) for lv in LEVELS_BEST_FIRST]})


class _OldPasswordAsLogin(AdminPasswordChangeForm):
    """The admin's password form, its old password checked through ``authenticate``: django-axes
    counts a wrong one as a failed login and locks the account as the login form does."""

    def __init__(self, user, *args, request=None, **kwargs):
        super().__init__(user, *args, **kwargs)
        self.request = request

    def clean_old_password(self):
        old = self.cleaned_data["old_password"]
        if authenticate(self.request, username=self.user.get_username(), password=old) is None:
            raise ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")
        return old


class _PasswordChange(PasswordChangeView):
    form_class = _OldPasswordAsLogin

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}


def password_change(request):
    """``/admin/password_change/``, served here rather than by the admin: Django's own checks the old
    password past django-axes, so a session left open let anyone try passwords there without limit."""
    from django.contrib import admin
    from django.urls import reverse
    request.current_app = admin.site.name
    return _PasswordChange.as_view(success_url=reverse("admin:password_change_done"),
                                   extra_context=admin.site.each_context(request))(request)
