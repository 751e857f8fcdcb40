"""Server-rendered pages for people: the totals dashboard."""

from django.db.models import Count
from django.shortcuts import render

from terminal.core.levels import LEVELS_BEST_FIRST, Level

from .models import Rating, Window


def _row(label: str, counts: dict[int, int]) -> dict:
    total = sum(counts.values())
    bad = sum(n for lv, n in counts.items() if Level(lv).is_bad)
    return {
        "label": label,
        "levels": [counts.get(int(lv), 0) for lv in LEVELS_BEST_FIRST],
        "total": total,
        "bad_share": f"{bad / total:.1%}" if total else "—",
        "mean": f"{sum(lv * n for lv, n in counts.items()) / total:.2f}" if total else "—",
    }


def dashboard(request):
    """Totals per level and per window. Auto-refreshes so a demo shows ratings arriving."""
    per_window: dict[str, dict[int, int]] = {}
    for row in Rating.objects.values("window_code", "level").annotate(n=Count("id")):
        per_window.setdefault(row["window_code"], {})[row["level"]] = row["n"]
    names = dict(Window.objects.values_list("code", "name"))
    windows = [_row(f"{names.get(code, '未登记窗口')} ({code})", counts)
               for code, counts in sorted(per_window.items())]
    overall: dict[int, int] = {}
    for counts in per_window.values():
        for lv, n in counts.items():
            overall[lv] = overall.get(lv, 0) + n
    return render(request, "ratings/dashboard.html", {
        "level_names": [lv.zh for lv in LEVELS_BEST_FIRST],
        "overall": _row("全部窗口", overall),
        "windows": windows,
        "recent": Rating.objects.order_by("-received_at")[:10],
    })
