"""Languages of the citizen-facing screens: Simplified Chinese by default, English available.

The source strings are the Chinese ones (``app.tr("感谢您的评价")`` in kv and Python); English comes
from the gettext catalog ``terminal/locale/en/LC_MESSAGES/terminal.po``, compiled to ``.mo`` with
``make translations`` (Babel). A string with no translation shows in Chinese, never as a key.
Content (names, notices, guides) is shown as the central server sends it.
"""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "terminal"
DEFAULT = "zh_CN"
LANGUAGES = {"zh_CN": "中文", "en": "English"}  # code -> the language's own name, for the switch


@cache
def translation(language: str) -> gettext.NullTranslations:
    if language == DEFAULT:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)


def tr(text: str, language: str) -> str:
    return translation(language).gettext(text)
