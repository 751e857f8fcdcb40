"""The token of the dynamic QR code (channel 3, 扫码评价): a terminal's rating, opened on the rater's phone.

The terminal makes the token itself, offline, from the rating's id and its own secret; the central
server checks it with the same secret. It says which terminal and which rating, until when, and
nothing about the person: ``<terminal id>.<rating id, base64url>.<expiry, base36 Unix s>.<MAC>``,
where the MAC is HMAC-SHA256 of ``mobile``, the three parts and nothing else, cut to 16 bytes
(base64url). About 70 characters: a QR code of version 5, read at a glance from a counter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

MAX_LIFETIME_S = 3600  # a token further ahead than this is no terminal's honest clock
_ID = re.compile(r"[A-Za-z0-9_-]{4,64}")


@dataclass(frozen=True)
class MobileToken:
    terminal_id: str
    rating_id: str  # 32 lowercase hex, as the terminal's rating ids are
    expires: int  # Unix seconds
    mac: str

    @property
    def text(self) -> str:
        return f"{self.terminal_id}.{_b64(bytes.fromhex(self.rating_id))}.{_base36(self.expires)}.{self.mac}"


def make(terminal_id: str, secret: str, rating_id: str, expires: int) -> MobileToken:
    return MobileToken(terminal_id, rating_id, expires, _mac(secret, terminal_id, rating_id, expires))


def parse(text: object) -> MobileToken | None:
    """The token's parts if it has the token's shape (not yet its MAC checked), else None."""
    if not isinstance(text, str) or len(text) > 160:
        return None
    parts = text.split(".")
    if len(parts) != 4 or not _ID.fullmatch(parts[0]):
        return None
    try:
        rating = base64.urlsafe_b64decode(parts[1] + "==")
        expires = int(parts[2], 36)
    except ValueError:
        return None
    if len(rating) != 16 or _b64(rating) != parts[1] or not re.fullmatch(r"[0-9a-z]{1,8}", parts[2]) \
            or not re.fullmatch(r"[A-Za-z0-9_-]{22}", parts[3]):
        return None
    return MobileToken(parts[0], rating.hex(), expires, parts[3])


def genuine(token: MobileToken, secret: str) -> bool:
    return hmac.compare_digest(token.mac, _mac(secret, token.terminal_id, token.rating_id, token.expires))


def _mac(secret: str, terminal_id: str, rating_id: str, expires: int) -> str:
    message = "\n".join(["mobile", terminal_id, rating_id, str(expires)]).encode()
    return _b64(hmac.new(secret.encode(), message, hashlib.sha256).digest()[:16])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
