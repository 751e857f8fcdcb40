"""The random codes in citizens' links: a window plaque's ``/w/<code>`` and an SMS invitation's
``/s/<token>``, each ``secrets.token_urlsafe(12)``, made by ``new`` (plaques and sms.invite alike).

``Converter`` lets a URL reach those views only with a code of that very shape, so anything else
(a NUL byte, which PostgreSQL refuses in text; a lone surrogate; 5,000 characters) is a 404 before
any query is made; ``well_formed`` is the same rule for code that is handed a token some other way.
``hidden`` is a text (an SMS, a request's path) as a page or a log may show it: an invitation's
link rates its case as the applicant, and a QR code's ``/r/<token>`` adds to its rating, for
whoever holds them (a plaque's code is printed at its window: no secret).
"""

from __future__ import annotations

import re
import secrets

NBYTES = 12
LENGTH = 16  # base64url of 12 bytes, no padding
PATTERN = f"[A-Za-z0-9_-]{{{LENGTH}}}"
_SHAPE = re.compile(PATTERN)
_SECRET_CODE = re.compile(rf"(?<=/s/){PATTERN}|(?<=/r/)[^\s/?#\"']+")


def new() -> str:
    return secrets.token_urlsafe(NBYTES)


def well_formed(code: str) -> bool:
    """Whether ``code`` has the shape ``new`` makes: what ``Converter`` lets through to a view."""
    return isinstance(code, str) and _SHAPE.fullmatch(code) is not None


def hidden(text: str) -> str:
    """``text`` with the code of every SMS link (``/s/<token>``) and QR code (``/r/<token>``) in it masked."""
    return _SECRET_CODE.sub("****", text)


class Converter:
    """A path converter (``<link:code>``) for exactly the codes ``new`` makes."""

    regex = PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
