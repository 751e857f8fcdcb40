"""The bundled Chinese font, cut to the characters a page or a printed plaque shows.

The whole font is 15 MB: right for a terminal, wrong for a phone on mobile data or a plaque's SVG.
``font_for(text)`` gives a subset holding only ``text``'s characters (and ASCII) as a data URL, a few
tens of kilobytes, made with fontTools and kept per set of characters. Inlined, it needs no second
request (which an in-app browser may block) and renders where no CJK font is installed.
"""

from __future__ import annotations

import base64
import functools
import io
from pathlib import Path

FONT = Path(__file__).resolve().parent.parent.parent / "assets" / "fonts" / "NotoSansSC-Regular.subset.otf"


def font_for(text: str) -> str:
    """The bundled font cut to the characters of ``text`` (and ASCII), as a data URL: a few tens of
    kilobytes instead of 15 MB, and no second request for an in-app browser to block."""
    return _subset("".join(sorted(set(text) | set(map(chr, range(0x20, 0x7f))))))


@functools.lru_cache(maxsize=256)
def _subset(characters: str) -> str:
    from fontTools import subset
    from fontTools.ttLib import TTFont
    options = subset.Options()
    options.layout_features = ["*"]
    font = TTFont(str(FONT), lazy=True)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=characters)
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return "data:font/otf;base64," + base64.b64encode(out.getvalue()).decode()
