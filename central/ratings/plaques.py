"""The static QR plaque at every window (窗口二维码, channel 3): printed once, rated from any phone.

The hall administrator prints a plaque per window from the admin: an A6 SVG with the hall, the
window, a short instruction and a QR code for ``/w/<plaque code>``. The code is random, per
window; making a new one retires every plaque printed before. A rating made through it is
channel 3 for that window, from a ``phone``.

A rater may name their case (办件编号), and the rating is then that case's (its counted rating,
credited to its staff member: ``ingest.settle_cases``), but only once they have shown it is theirs:
anyone can read a plaque, and a case number is printed on receipts and said aloud at the counter.
The case must be reported at this window, not cancelled, within ``Policy.default_after_days`` of
its completion (as an SMS link), and the rater must give the last four digits of the mobile number
it was reported with. Else nothing is stored, and the form says so (one answer for every reason, so
it tells nobody which cases exist); a case may be named ``CASE_TRIES`` times in all (a count kept
for ``CASE_TRIES_PERIOD``, longer than any case stays open to rating), so its four digits cannot be
guessed: a limit per hour let 840 of the ten thousand be tried in a week. A rating without a case
number is the window's.

A plaque is open to anyone who walks by, so, as Shanghai's rules ask: each phone (a signed cookie)
may rate a window 3 times a day and each address 30 times an hour, beyond which nothing is
stored (429); a phone or address that rated the window in the last 24 hours is kept but flagged
``repeat_rater`` and not counted. Every post, a bad form too, counts against its address (60 in
10 minutes) before it is read, and a form sent back keeps the font cut to the page's own wording.
"""

from __future__ import annotations

import hmac
import io
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

import segno
from django.conf import settings
from django.core import signing as django_signing
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import escape
from django.views.decorators.csrf import csrf_protect

from terminal.core.channels import Channel
from terminal.core.checks import text as checked_text
from terminal.core.levels import LEVELS_BEST_FIRST, Level
from terminal.core.rating import MAX_CASE_NO, MAX_TEXT

from . import direct, link_tokens, throttle
from .mobile import address_hash, language_of, message, posted_reasons, public_base, reason_choices
from .models import Case, Policy, Rating, ReasonTag, Window
from .page_font import font_for

PER_DEVICE_PER_DAY = 3
PER_ADDRESS_PER_HOUR = 30
POSTS_PER_ADDRESS = 60  # per 10 minutes, any form (a bad one too), counted before it is read
CASE_TRIES = 10  # per case named at a plaque, ever: 1 in 1,000 of the ten thousand last four digits
CASE_TRIES_PERIOD = timedelta(days=366)  # the count's period: at most two periods meet one case's life
REPEAT_WITHIN = timedelta(hours=24)
REPEAT_RATER = "repeat_rater"
DEVICE_COOKIE = "rating_phone"

WORDS = {
    "zh": {"title": "评价窗口服务", "hall": "大厅", "window": "窗口", "level": "请您对本窗口的服务做出评价",
           "reasons": "如不满意，请选择原因（可多选）", "case": "办件编号（选填）", "comment": "您的意见（选填）",
           "tail": "办件登记的手机号码后四位（填写办件编号时必填）",
           "submit": "提交评价", "other": "English", "pick": "请选择一个评价等级",
           "bad_text": "意见中含有无法识别的字符", "bad_case": "办件编号格式不正确",
           "bad_tail": "填写办件编号时，请填写办件登记的手机号码后四位",
           "unverified": "无法核对该办件：办件编号或手机号码后四位不符，或已过评价期限。请核对，或不填办件编号直接评价本窗口",
           "thanks": "感谢您的评价！", "thanks_note": "您的评价已提交。",
           "invalid": "二维码无效", "invalid_note": "该二维码已停用，请扫描窗口的新二维码。",
           "busy": "评价过于频繁", "busy_note": "同一手机或网络在短时间内评价次数过多，请稍后再试。",
           "rated": "该办件已评价", "rated_note": "感谢您，本次服务已有评价。",
           "instruction": "扫码评价本窗口服务", "instruction_en": "Scan to rate this window"},
    "en": {"title": "Rate this window", "hall": "Hall", "window": "Window", "level": "How was the service at this window?",
           "reasons": "If not satisfied, what went wrong? (choose any)", "case": "Case number (optional)",
           "tail": "Last 4 digits of the mobile number given for the case (needed with a case number)",
           "comment": "Your comment (optional)", "submit": "Submit", "other": "中文", "pick": "Please choose a rating",
           "bad_text": "The comment has characters we cannot read", "bad_case": "That case number is not valid",
           "bad_tail": "With a case number, please give the last 4 digits of the mobile number given for it",
           "unverified": "That case cannot be confirmed: its number or the last 4 digits do not match, or its "
                         "rating period is over. Check them, or rate the window without a case number",
           "thanks": "Thank you!", "thanks_note": "Your rating was received.",
           "invalid": "This QR code is not valid", "invalid_note": "This code was retired; scan the window's new one.",
           "busy": "Too many ratings", "busy_note": "This phone or network rated too often; please try again later.",
           "rated": "Already rated", "rated_note": "Thank you: this service has been rated.",
           "instruction": "Scan to rate this window", "instruction_en": ""},
}


def code_for(window: Window, renew: bool = False) -> str:
    """The window's plaque code, made on first use; ``renew`` retires every plaque printed before."""
    if renew or not window.plaque_code:
        window.plaque_code = link_tokens.new()
        Window.objects.filter(pk=window.pk).update(plaque_code=window.plaque_code)
    return window.plaque_code


def public_url(request) -> str:
    """Where phones reach this server: ``RATING_CENTRAL_PUBLIC_URL``, else the request's own address."""
    return public_base() or request.build_absolute_uri("/").rstrip("/")


def plaque_svg(window: Window, url: str) -> str:
    """An A6 plaque (105 × 148 mm): the hall, the window, the instruction in Chinese and English, and
    the QR code, with its text in the bundled font cut to these characters and embedded."""
    qr = segno.make(url, error="q")
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=1, border=4, xmldecl=False, svgns=True, omitsize=True)
    modules = out.getvalue().decode()
    size = qr.symbol_size(scale=1, border=4)[0]
    hall, name = window.hall.name, window.name
    words = WORDS["zh"]
    shown = hall + name + words["instruction"] + words["instruction_en"] + window.code
    return f'''<svg xmlns="http://www.w3.org/2000/svg" width="105mm" height="148mm" viewBox="0 0 105 148">
<style>@font-face {{ font-family: "Plaque"; src: url("{font_for(shown)}") format("opentype"); }}
text {{ font-family: "Plaque", sans-serif; text-anchor: middle; fill: #1f4e8c; }}</style>
<rect width="105" height="148" fill="#fff"/>
<rect x="3" y="3" width="99" height="142" rx="4" fill="none" stroke="#1f4e8c" stroke-width="0.8"/>
<text x="52.5" y="17" font-size="6">{escape(hall)}</text>
<text x="52.5" y="30" font-size="9.5" font-weight="bold">{escape(name)}</text>
<svg x="17.5" y="38" width="70" height="70" viewBox="0 0 {size} {size}">{modules.split(">", 1)[1].rsplit("</svg>", 1)[0]}</svg>
<text x="52.5" y="120" font-size="7" font-weight="bold">{escape(words["instruction"])}</text>
<text x="52.5" y="129" font-size="4.5">{escape(words["instruction_en"])}</text>
<text x="52.5" y="140" font-size="3" fill="#777">{escape(window.code)}</text>
</svg>
'''


@csrf_protect
def page(request, code: str):
    language = language_of(request)
    words = WORDS[language]
    address = address_hash(request)
    device = _device(request)
    window = Window.objects.select_related("hall").filter(plaque_code=code).first()  # the URL checked its shape
    if window is None:
        return _with_device(message(request, WORDS, language, "invalid", 404), device)
    if request.method == "POST" and not throttle.allow(f"plaque-post:{address}", POSTS_PER_ADDRESS, 600):
        return _with_device(message(request, WORDS, language, "busy", 429), device)
    tags = list(ReasonTag.objects.filter(active=True).order_by("order", "id"))
    form = read_form(request, words, tags) if request.method == "POST" else None
    if form and not form.problem:
        case = None
        if form.case_no:
            if not case_may_be_tried(window, form.case_no):
                return _with_device(message(request, WORDS, language, "busy", 429), device)
            case = rater_case(window, form.case_no, form.phone_tail)
            if case is None:
                form.problem = words["unverified"]
                return _with_device(form_page(request, language, window, tags, form), device)
        if not (throttle.allow(f"plaque-device:{device}:{window.pk}", PER_DEVICE_PER_DAY, 24 * 3600)
                and throttle.allow(f"plaque-address:{address}:{window.pk}", PER_ADDRESS_PER_HOUR, 3600)):
            return _with_device(message(request, WORDS, language, "busy", 429), device)
        rate(window, form.level, form.reasons, form.text, case, device, address)
        return _with_device(message(request, WORDS, language, "thanks", 200), device)
    return _with_device(form_page(request, language, window, tags, form), device)


def case_may_be_tried(window: Window, case_no: str, now=None) -> bool:
    """Count one more try of naming ``case_no`` at ``window``'s plaque; whether it is within
    ``CASE_TRIES`` (counted before the digits are checked, right or wrong, from any phone)."""
    return throttle.allow(f"plaque-case:{window.pk}:{case_no}", CASE_TRIES, int(CASE_TRIES_PERIOD.total_seconds()),
                          now)


@dataclass
class Form:
    """A phone's rating form as posted, checked: ``problem`` says what to fix (nothing is stored)."""
    level: Level | None
    reasons: list[str]
    text: str
    case_no: str
    problem: str
    phone_tail: str = ""  # the last four digits of the case's mobile number, as the rater gave them


def read_form(request, words: dict, tags: list) -> Form:
    reasons = posted_reasons(request, tags)
    values = {k: request.POST.get(k, "")[:MAX_TEXT + 1].strip() for k in ("level", "case_no", "text", "phone_tail")}
    tail = unicodedata.normalize("NFKC", values["phone_tail"])  # full-width ０-９ as typed on some phones
    level = Level(int(values["level"])) if values["level"] in {str(int(lv)) for lv in Level} else None
    problem = ""
    try:
        checked_text(MAX_TEXT, allow_empty=True)(values["text"])
    except ValueError:
        problem = words["bad_text"]
    try:
        checked_text(MAX_CASE_NO, allow_empty=True)(values["case_no"])
    except ValueError:
        problem = words["bad_case"]
    if values["case_no"] and not re.fullmatch(r"[0-9]{4}", tail):
        problem = words["bad_tail"]
    if level is None:
        problem = words["pick"]
    return Form(level, reasons, values["text"], values["case_no"], problem, tail)


def form_page(request, language: str, window: Window, tags: list, form: Form | None, with_case: bool = True,
              heading: str = ""):
    """The rating form (a plaque's, an SMS link's), in the bundled font cut to its own wording: never
    to what the rater typed (that renders in the phone's own fonts), so no post makes a new subset."""
    words = WORDS[language]
    chosen = form.reasons if form else []
    picked = str(int(form.level)) if form and form.level else ""
    levels = [(int(lv), lv.en if language == "en" else lv.zh, picked == str(int(lv))) for lv in LEVELS_BEST_FIRST]
    reasons = reason_choices(tags, language, chosen)
    values = {"case_no": form.case_no if form else "", "text": form.text if form else "",
              "phone_tail": form.phone_tail if form else ""}
    problem = form.problem if form else ""
    shown = "".join([*(words[k] for k in ("title", "hall", "window", "level", "reasons", "case", "tail", "comment",
                                          "submit", "other", "pick", "bad_text", "bad_case", "bad_tail", "unverified")),
                     window.hall.name,
                     window.name, heading, *(label for _, label, _ in levels), *(label for _, label, _ in reasons)])
    return render(request, "ratings/plaque.html", {
        "words": words, "language": language, "window": window, "levels": levels, "reasons": reasons,
        "problem": problem, "values": values, "other_lang": "zh" if language == "en" else "en",
        "with_case": with_case, "heading": heading or words["title"], "font": font_for(shown)},
        status=400 if problem else 200)


def rater_case(window: Window, case_no: str, phone_tail: str) -> Case | None:
    """The case a plaque's rater named, if they showed it is theirs (the module's rules), else None."""
    case = Case.objects.filter(case_no=case_no, window=window).exclude(status="cancelled").first()
    if case is None or not case.mobile_masked[-4:].isdigit():
        return None
    if not hmac.compare_digest(case.mobile_masked[-4:], phone_tail):
        return None
    period = timedelta(days=Policy.current().default_after_days)
    if case.completed_at is not None and timezone.now() > case.completed_at + period:
        return None
    return case


def rate(window: Window, level: Level, reasons: list[str], text: str, case: Case | None, device: str,
         address: str) -> Rating:
    """Store a plaque's rating for ``window`` (for ``case``, one ``rater_case`` found), through the
    same case rules and work orders as a terminal's; a repeat from the same phone or address within
    a day is kept, flagged, not counted. The case gives the rating its staff member and item, as an
    SMS link's does: else the case's counted rating would be credited to nobody.

    The look for a repeat and the rating are one transaction holding the window's row: else a burst
    of posts sent at once from one address (each without the phone's cookie) all looked before any
    was stored, and every one counted, each bad one opening a work order."""
    case_no, staff_no, item_code = (case.case_no, case.staff_no, case.item_code) if case else ("", "", "")
    with transaction.atomic():
        Window.objects.select_for_update().filter(pk=window.pk).values_list("pk", flat=True).get()
        since = timezone.now() - REPEAT_WITHIN
        repeat = (Rating.objects.filter(window_code=window.code, device="phone", channel=int(Channel.QR_CODE),
                                        rated_at__gte=since)
                  .filter(Q(payload__rater=device) | Q(payload__address=address)).exists())
        return direct.rate(window_code=window.code, level=level, channel=Channel.QR_CODE, device="phone",
                           case_no=case_no, staff_no=staff_no, item_code=item_code,
                           reasons=reasons, text=text, facts={"rater": device, "address": address},
                           flag=(REPEAT_RATER, "同一手机或网络 24 小时内已评价过该窗口，保留但不计入") if repeat else None)


def _device(request) -> str:
    """This phone's id, from a signed cookie set on its first visit (a new one otherwise)."""
    try:
        return django_signing.get_cookie_signer(salt=DEVICE_COOKIE).unsign(request.COOKIES.get(DEVICE_COOKIE, ""))
    except django_signing.BadSignature:
        return "d" + secrets.token_hex(12)


def _with_device(response, device: str):
    signed = django_signing.get_cookie_signer(salt=DEVICE_COOKIE).sign(device)
    response.set_cookie(DEVICE_COOKIE, signed, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
                        secure=getattr(settings, "SESSION_COOKIE_SECURE", False))
    return response


def plaque_response(request, window: Window, renew: bool = False) -> HttpResponse:
    """The plaque as a download, for the admin's action."""
    url = f"{public_url(request)}/w/{code_for(window, renew)}"
    response = HttpResponse(plaque_svg(window, url), content_type="image/svg+xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="plaque-{window.code}.svg"'
    return response
