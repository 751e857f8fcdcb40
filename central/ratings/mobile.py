"""The rater's phone page (扫码评价, channel 3): ``/r/<token>`` from the QR code on the terminal.

The rater adds reason tags and a comment, in Chinese with their phone's own input method, to the
rating they just made at the terminal; it joins that rating (``RatingAddition``), never a second
one. The token is checked with the terminal's secret (``terminal.core.mobile_token``), used once,
and expires; the page is rate-limited per address and per token. It works inside WeChat's and
Alipay's browsers: one narrow page with no external assets, its font a subset of the bundled one
holding only the characters the page shows, inlined. Chinese by default, English one tap away.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass

import orjson

from django.conf import settings
from django.db import IntegrityError, transaction
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_protect

from terminal.core import mobile_token
from terminal.core.checks import text as checked_text
from terminal.core.rating import MAX_REASONS, MAX_TEXT

from . import throttle
from .page_font import font_for
from .models import Rating, RatingAddition, ReasonTag, Terminal
from .sql_time import aware

PAGE_VIEWS_PER_ADDRESS = 60  # per 10 minutes: a hall's Wi-Fi puts many phones behind one address
SUBMISSIONS_PER_TOKEN = 5  # tries (a form with an error counts), before the token is refused

WORDS = {
    "zh": {"title": "补充评价意见", "window": "窗口", "reasons": "请选择原因（可多选）", "comment": "您的意见",
           "placeholder": "请输入您的意见或建议（不超过 500 字）", "submit": "提交", "other": "English",
           "thanks": "感谢您的意见！", "thanks_note": "您的意见已加入本次评价，我们将认真改进。",
           "invalid": "二维码无效", "invalid_note": "请重新扫描评价器上的二维码。",
           "expired": "二维码已过期", "expired_note": "本次评价的补充意见时间已过。",
           "used": "已提交过", "used_note": "每次评价只能补充一次意见。",
           "busy": "操作过于频繁", "busy_note": "请稍后再试。",
           "empty": "请选择原因或填写意见", "bad_text": "意见中含有无法识别的字符",
           "privacy": "您的意见只与本次评价关联，不记录您的身份。"},
    "en": {"title": "Add to your rating", "window": "Window", "reasons": "What went wrong? (choose any)",
           "comment": "Your comment", "placeholder": "Your comment or suggestion (up to 500 characters)",
           "submit": "Submit", "other": "中文",
           "thanks": "Thank you!", "thanks_note": "Your comment was added to your rating.",
           "invalid": "This QR code is not valid", "invalid_note": "Please scan the code on the terminal again.",
           "expired": "This QR code has expired", "expired_note": "The time to add to this rating has passed.",
           "used": "Already sent", "used_note": "A rating takes one comment from a phone.",
           "busy": "Too many tries", "busy_note": "Please try again later.",
           "empty": "Choose a reason or write a comment", "bad_text": "The comment has characters we cannot read",
           "privacy": "Your comment joins this rating only; who you are is not recorded."},
}


@csrf_protect
def page(request, token: str):
    language = language_of(request)
    words = WORDS[language]
    address = address_hash(request)
    if not throttle.allow(f"mobile-view:{address}", PAGE_VIEWS_PER_ADDRESS, 600):
        return message(request, WORDS, language, "busy", 429)
    parsed = mobile_token.parse(token)
    terminal = _terminal(parsed.terminal_id) if parsed else None
    if terminal is None or not mobile_token.genuine(parsed, terminal.secret):
        return message(request, WORDS, language, "invalid", 404)  # unknown, forged or another terminal's: one answer
    now = timezone.now().timestamp()
    if parsed.expires < now or parsed.expires > now + mobile_token.MAX_LIFETIME_S + 300:
        return message(request, WORDS, language, "expired", 410)
    if RatingAddition.objects.filter(token_mac=parsed.mac).exists():
        return message(request, WORDS, language, "used", 410)
    tags = list(ReasonTag.objects.filter(active=True).order_by("order", "id"))
    problem, chosen, comment = "", [], ""
    if request.method == "POST":
        if not throttle.allow(f"mobile-post:{parsed.mac}", SUBMISSIONS_PER_TOKEN, 24 * 3600):
            return message(request, WORDS, language, "busy", 429)
        chosen = posted_reasons(request, tags)
        comment = request.POST.get("text", "")[:MAX_TEXT + 1].strip()
        try:
            comment = checked_text(MAX_TEXT, allow_empty=True)(comment)
        except ValueError:
            problem = words["bad_text"]
        if not problem and not chosen and not comment:
            problem = words["empty"]
        if not problem:
            try:
                with transaction.atomic():
                    RatingAddition.objects.create(rating_id=parsed.rating_id, terminal=terminal, token_mac=parsed.mac,
                                                  reasons=chosen, text=comment, language=language,
                                                  address_hash=address)
                    tell_platforms(parsed.rating_id, terminal)
            except IntegrityError:  # the same token sent twice at once: the first one counts
                return message(request, WORDS, language, "used", 410)
            return message(request, WORDS, language, "thanks", 200)
    reasons = reason_choices(tags, language, chosen)
    shown = [words[k] for k in ("title", "window", "reasons", "comment", "placeholder", "submit", "other",
                                "privacy", "empty", "bad_text")] + [terminal.window.name] + [label for _, label, _ in reasons]
    return render(request, "ratings/mobile.html", {
        "words": words, "language": language, "window": terminal.window, "reasons": reasons, "problem": problem,
        "comment": comment, "other_lang": "zh" if language == "en" else "en", "font": font_for("".join(shown)),
    }, status=400 if problem else 200)


def tell_platforms(rating_id: str, terminal: Terminal) -> None:
    """The platforms upward hear an addition as an update of the rating's record (``addition``),
    once the rating is stored: one that arrives later carries it in its first record."""
    from . import upward
    if Rating.objects.filter(rating_id=rating_id, terminal_id=terminal.terminal_id).exists():
        upward.queue_ids([rating_id], "addition")


@dataclass(frozen=True)
class Added:
    """What a rater added by phone to one rating."""

    reasons: list
    text: str
    submitted_at: datetime.datetime


def additions_of(ratings: dict[str, str]) -> dict[str, list[Added]]:
    """rating_id -> what its rater added by phone, oldest first, for ``ratings`` (rating_id -> the
    terminal that made it). Only an addition through that terminal's own QR code joins a rating: a
    token names the terminal that signed it, so no terminal can put words into another's ratings.
    Plain SQL, as the push reads a thousand ratings at a time."""
    from .ingest import select_in
    rows = select_in(RatingAddition, "rating_id", list(ratings), ["rating_id", "terminal_id", "reasons", "text",
                                                                  "submitted_at", "id"])
    if not rows:
        return {}
    terminals = dict(Terminal.objects.filter(pk__in={row[1] for row in rows}).values_list("pk", "terminal_id"))
    found: dict[str, list[Added]] = {}
    for rating_id, terminal_pk, reasons, text, submitted, _ in sorted(rows, key=lambda row: row[5]):  # by id first
        if terminals.get(terminal_pk) == ratings[rating_id]:
            reasons = orjson.loads(reasons) if isinstance(reasons, (str, bytes)) else reasons or []
            found.setdefault(rating_id, []).append(Added(reasons, text, aware(submitted)))
    for added in found.values():
        added.sort(key=lambda a: a.submitted_at)  # stable: the same time keeps the id's order
    return found


def message(request, words: dict, language: str, key: str, status: int):
    """A one-line answer page of a phone page (thanks, invalid, expired, used, busy, rated), from
    that page's ``words``, in the bundled font cut to what it shows. A refusal offers the other
    language, as the forms do: a rater who cannot read Chinese must learn why too (the thanks
    follows a form sent in the rater's language already)."""
    said = words[language]
    other = "" if key == "thanks" else "zh" if language == "en" else "en"
    return render(request, "ratings/mobile_message.html", {
        "words": said, "language": language, "heading": said[key], "note": said[f"{key}_note"], "other_lang": other,
        "font": font_for(said[key] + said[f"{key}_note"] + said["title"] + (said["other"] if other else ""))},
        status=status)


def _terminal(terminal_id: str) -> Terminal | None:
    found = Terminal.objects.select_related("window").filter(terminal_id=terminal_id).first()
    return found if found is not None and found.revoked_at is None else None



def language_of(request) -> str:
    """The phone pages' language: Chinese, unless the page was asked for in English (``?lang=en``)."""
    return "en" if request.GET.get("lang") == "en" else "zh"


def posted_reasons(request, tags: list) -> list[str]:
    """The reason tags a phone posted, only those offered, at most ``MAX_REASONS``."""
    codes = {t.code for t in tags}
    return [c for c in request.POST.getlist("reasons") if c in codes][:MAX_REASONS]


def reason_choices(tags: list, language: str, chosen: list[str]) -> list[tuple[str, str, bool]]:
    """(code, label in the page's language, chosen) for each tag a phone page offers."""
    return [(t.code, t.label_en or t.label if language == "en" else t.label, t.code in chosen) for t in tags]


def public_base() -> str:
    """Where raters' phones reach this server (``RATING_CENTRAL_PUBLIC_URL``), or "" when not set."""
    return (getattr(settings, "PUBLIC_URL", "") or "").rstrip("/")


def address_hash(request) -> str:
    """Who is asking, as a keyed hash: enough to count and to flag repeats, not to identify."""
    from django.utils.module_loading import import_string
    address = import_string(settings.AXES_CLIENT_IP_CALLABLE)(request)  # the proxy's X-Real-IP when deployed
    return hmac.new(settings.SECRET_KEY.encode(), address.encode(), hashlib.sha256).hexdigest()
