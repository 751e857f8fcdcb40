"""The one check of an image a terminal is asked to show: the central admin's own limits.

A staff photo is JPEG, PNG or WebP, at most ``MAX_BYTES`` and ``MAX_SIDE`` pixels a side: what
``central/ratings/validators.py`` lets an administrator upload, through this same check. Sync checks every content image
before it swaps a content version in, and the kiosk checks again before it loads one, so a
decompression bomb (a small file that decodes to gigabytes) never reaches the screen. Only the
header is read to learn the size; ``verify`` then walks the data without decoding it to pixels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 2 * 1024 * 1024
MAX_SIDE = 4000
FORMATS = {"JPEG", "PNG", "WEBP"}
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass(frozen=True)
class Refusal:
    """Why an image may not be shown: ``kind`` (too_heavy, format, too_wide, bomb, unreadable) and
    the facts, so each side says it in its own language (the terminal's log, the admin's form)."""

    kind: str
    detail: str
    size: int = 0
    width: int = 0
    height: int = 0
    format: str = ""

    def __str__(self) -> str:
        return self.detail


def check(source, size: int | None = None, max_bytes: int = MAX_BYTES, max_side: int = MAX_SIDE) -> Refusal | None:
    """Why this image (a path, or an open file and its ``size``) may not be shown, or None."""
    from PIL import Image
    if size is None:
        try:
            size = Path(source).stat().st_size
        except OSError as exc:
            return Refusal("unreadable", f"unreadable ({exc.strerror})")
    if size > max_bytes:
        return Refusal("too_heavy", f"{size} bytes, more than {max_bytes}", size=size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                kind, (width, height) = image.format, image.size
                if kind not in FORMATS:
                    return Refusal("format", f"{kind} is not JPEG, PNG or WebP", format=kind or "")
                if width > max_side or height > max_side:
                    return Refusal("too_wide", f"{width}×{height} pixels, more than {max_side} a side",
                                   width=width, height=height)
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Refusal("bomb", f"a decompression bomb ({exc})")
    except (OSError, ValueError, SyntaxError) as exc:  # PIL reports broken files as any of these
        return Refusal("unreadable", f"not a readable image ({type(exc).__name__}: {exc})")
    return None


def problem(path: str | Path, max_bytes: int = MAX_BYTES, max_side: int = MAX_SIDE) -> str | None:
    """Why this file may not be shown, or None if it may."""
    refusal = check(path, None, max_bytes, max_side)
    return None if refusal is None else str(refusal)
