"""The one check of an image a terminal is asked to show: the central admin's own limits.

A staff photo is JPEG, PNG or WebP, at most ``MAX_BYTES`` and ``MAX_SIDE`` pixels a side (what
``central/ratings/validators.py`` lets an administrator upload). Sync checks every content image
before it swaps a content version in, and the kiosk checks again before it loads one, so a
decompression bomb (a small file that decodes to gigabytes) never reaches the screen. Only the
header is read to learn the size; ``verify`` then walks the data without decoding it to pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

MAX_BYTES = 2 * 1024 * 1024
MAX_SIDE = 4000
FORMATS = {"JPEG", "PNG", "WEBP"}
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def problem(path: str | Path, max_bytes: int = MAX_BYTES, max_side: int = MAX_SIDE) -> str | None:
    """Why this file may not be shown, or None if it may."""
    from PIL import Image
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if size > max_bytes:
        return f"{size} bytes, more than {max_bytes}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.format not in FORMATS:
                    return f"{image.format} is not JPEG, PNG or WebP"
                width, height = image.size
                if width > max_side or height > max_side:
                    return f"{width}×{height} pixels, more than {max_side} a side"
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"a decompression bomb ({exc})"
    except (OSError, ValueError, SyntaxError) as exc:  # PIL reports broken files as any of these
        return f"not a readable image ({type(exc).__name__}: {exc})"
    return None
