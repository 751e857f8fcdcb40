"""A server's public-key pin (``[sync] server_key_pin``), read from its two written forms. Pure: the
configuration checks it without loading the HTTP stack (the kiosk reads the same file at start)."""

from __future__ import annotations

import base64
import binascii
import re

_HEX = re.compile(r"^[0-9a-f]{64}$")


class PinError(ValueError):
    """A pin that is not a SHA-256 in either accepted form."""


def parse_pin(pin: str) -> str:
    """The pin as 64 lowercase hex characters ("" for none); PinError if malformed."""
    pin = pin.strip()
    if not pin:
        return ""
    if _HEX.match(pin.lower()):
        return pin.lower()
    if pin.startswith("sha256/"):
        try:
            raw = base64.b64decode(pin[7:], validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == 32:
            return raw.hex()
    raise PinError("server_key_pin must be the SHA-256 of the server's public key: 64 hex characters "
                   "or sha256/<base64>")
