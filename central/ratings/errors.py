"""The error pages (400, 403, 404, 500, and 429 for a locked login), Chinese first with English beneath, in the phone pages' look.

Django's own are English only, and a citizen meets them: a scanner that adds a slash to a plaque's
link (404), a form of over 1,000 fields (400), a form whose page sat open past its CSRF cookie (403),
a fault (500). Each page is rendered without the request (no context processor, no session, no
database: a 500 may come from the database), in the bundled font cut to its fixed wording.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.template.loader import render_to_string

from .page_font import font_for

BRAND = "政务服务好差评"
LOCKED_MINUTES = round(settings.AXES_COOLOFF_TIME * 60)  # django-axes' cool-off, in hours
WORDS = {
    400: ("请求有误", "无法处理该请求。请返回上一页重试，或重新扫描窗口的二维码。",
          "Bad request", "The request could not be handled. Go back and try again, or scan the window's QR code again."),
    403: ("无法提交", "页面已过期或无权访问。请刷新页面后重试。",
          "Forbidden", "The page has expired or is not open to you. Reload it and try again."),
    404: ("页面不存在", "请检查链接，或重新扫描窗口的二维码。",
          "Not found", "Check the link, or scan the window's QR code again."),
    429: ("登录尝试过多", f"密码错误次数过多，该账号或当前网络已暂时锁定。请 {LOCKED_MINUTES} 分钟后再试，或联系大厅管理员。",
          "Too many login attempts", f"Too many wrong passwords: this account or network is locked for "
                                     f"{LOCKED_MINUTES} minutes. Try again later, or ask the hall administrator."),
    500: ("服务暂时出错", "服务器出现问题，请稍后再试。",
          "Server error", "Something went wrong on our side. Please try again later."),
}


def answer(status: int) -> HttpResponse:
    heading, note, heading_en, note_en = WORDS[status]
    return HttpResponse(render_to_string("ratings/error.html", {
        "status": status, "brand": BRAND, "heading": heading, "note": note, "heading_en": heading_en, "note_en": note_en,
        "words": {"title": f"{heading} · {heading_en}"}, "language": "zh", "font": _font(BRAND + heading + note)}),
        status=status)


def _font(text: str) -> str:
    """The page's font, or none (the phone's own fonts) if it cannot be cut: an error page must answer."""
    try:
        return font_for(text)
    except Exception:  # noqa: BLE001 - out of memory, a missing font file: the page still answers
        return ""


def bad_request(request, exception=None):
    return answer(400)


def permission_denied(request, exception=None):
    return answer(403)


def csrf_failure(request, reason: str = ""):
    return answer(403)


def page_not_found(request, exception=None):
    return answer(404)


def locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a locked login (``AXES_LOCKOUT_CALLABLE``): its own is one English line."""
    return answer(429)


def server_error(request):
    return answer(500)
