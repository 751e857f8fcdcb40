"""The QR code that opens the rater's phone page (扫码评价, channel 3) for the rating on screen.

The token is made here, offline, with the terminal's own secret (``terminal.core.mobile_token``);
its expiry is in the server's time (the terminal's clock corrected by the offset the sync daemon
learned), so a terminal whose clock is wrong still makes codes the server believes. The URL
carries no personal data: the terminal, the rating's id, the expiry and the MAC.
"""

from __future__ import annotations

import io
import time

import segno

from terminal.core import mobile_token

LIFETIME_S = 30 * 60  # long enough to finish on the phone after leaving the counter


def url_for(mobile_url: str, terminal_id: str, secret: str, rating_id: str, clock_offset_s: float = 0.0,
            now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + clock_offset_s + LIFETIME_S)
    return f"{mobile_url.rstrip('/')}/r/{mobile_token.make(terminal_id, secret, rating_id, expires).text}"


def png(url: str, scale: int = 8) -> bytes:
    """The code as a PNG: error correction M, a quiet zone of four modules, dark on white, as
    every phone camera and WeChat's scanner reads it from a screen."""
    out = io.BytesIO()
    segno.make(url, error="m", boost_error=False).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def texture(url: str):
    """The code as a Kivy texture (on the UI thread)."""
    from kivy.core.image import Image as CoreImage
    image = CoreImage(io.BytesIO(png(url)), ext="png", nocache=True)
    image.texture.mag_filter = "nearest"  # sharp modules at any size
    return image.texture
